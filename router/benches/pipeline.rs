//! In-process costs (criterion): event decoding per content mode, route matching
//! against 1, 100 and 1,000 routes (Subscriptions API filters and CESQL), one CESQL
//! filter next to the same filter in the native dialects, a handler call through the
//! whole dispatcher (reused and fresh instances) next to the same logic compiled
//! natively, and a trivial handler (one that emits nothing) through the dispatcher.
//! Run with `cargo bench -p router --bench pipeline`.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use router::config::{Config, Source};
use router::dispatch::Dispatcher;
use router::event::Event;
use router::event::http::decode_binary;
use router::event::json::{decode_batch, decode_structured, encode_structured};
use router::runtime::Runtime;
use std::hint::black_box;
use std::time::Instant;

fn data(size: usize) -> String {
    let filler = "x".repeat(size.saturating_sub(40));
    format!("{{\"orderId\":\"o-1\",\"note\":\"{filler}\"}}")
}

fn binary_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("ce-specversion", "1.0"),
        ("ce-id", "bench-1"),
        ("ce-source", "/bench"),
        ("ce-type", "bench.event"),
        ("ce-subject", "order%201"),
        ("content-type", "application/json"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn event() -> Event {
    let mut e = Event::new("bench-1", "/bench", "bench.event");
    e.datacontenttype = Some("application/json".into());
    e.data = Some(Bytes::from(data(256)));
    e
}

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    let headers = binary_headers();
    let body = Bytes::from(data(256));
    g.throughput(Throughput::Elements(1));
    g.bench_function("binary_256B", |b| {
        b.iter(|| decode_binary(black_box(&headers), black_box(body.clone())))
    });
    let structured = Bytes::from(encode_structured(&event()));
    g.bench_function("structured_256B", |b| {
        b.iter(|| decode_structured(black_box(&structured)))
    });
    let one = String::from_utf8(encode_structured(&event())).unwrap_or_default();
    let batch = Bytes::from(format!("[{}]", vec![one; 100].join(",")));
    g.throughput(Throughput::Elements(100));
    g.bench_function("batch_100x256B", |b| {
        b.iter(|| decode_batch(black_box(&batch), 1000))
    });
    g.finish();
}

/// `n` routes on distinct exact types (indexed) plus a few prefix routes (scanned),
/// written in the Subscriptions API dialects or, with `sql`, in CESQL.
fn routes_config(n: usize, sql: bool) -> String {
    let mut text = String::new();
    for i in 0..n {
        let filter = if sql {
            if i % 10 == 9 {
                format!("{{ sql = \"type LIKE 'other.{i}.%' AND NOT (subject = 'x')\" }}")
            } else {
                format!("{{ sql = \"type = 'bench.type.{i}'\" }}")
            }
        } else if i % 10 == 9 {
            format!(
                "{{ all = [ {{ prefix = {{ type = \"other.{i}.\" }} }}, {{ not = {{ exact = {{ subject = \"x\" }} }} }} ] }}"
            )
        } else {
            format!("{{ exact = {{ type = \"bench.type.{i}\" }} }}")
        };
        text.push_str(&format!(
            "[[route]]\nname = \"r{i}\"\nfilter = {filter}\nforward = \"http://127.0.0.1:9/\"\n\n"
        ));
    }
    text
}

fn matching(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let mut g = c.benchmark_group("match");
    for (label, sql) in [("routes", false), ("sql_routes", true)] {
        for n in [1usize, 100, 1000] {
            let source = Source::new("bench.toml", routes_config(n, sql));
            let config = Config::parse(source, |_| None).expect("config");
            let runtime = rt.block_on(Runtime::build(&config)).expect("runtime");
            let mut e = event();
            e.ty = format!("bench.type.{}", n / 2);
            g.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                b.iter(|| black_box(runtime.matching(black_box(&e)).count()))
            });
        }
    }
    g.finish();
}

/// One filter evaluated on its own: CESQL next to the same condition in the
/// Subscriptions API dialects (the baseline).
fn filter(c: &mut Criterion) {
    use router::policy::filter::{Filter, FilterSpec};
    let compile = |toml_text: &str| -> Filter {
        #[derive(serde::Deserialize)]
        struct Wrapper {
            filter: FilterSpec,
        }
        let w: Wrapper = toml::from_str(toml_text).expect("filter TOML");
        w.filter.compile().expect("filter")
    };
    let native = compile(
        r#"filter = { all = [
            { exact = { type = "order.created" } },
            { prefix = { source = "shop/" } },
            { any = [ { exact = { priority = "high" } }, { exact = { priority = "urgent" } } ] },
        ] }"#,
    );
    let sql = compile(
        r#"filter = { sql = "type = 'order.created' AND source LIKE 'shop/%' AND priority IN ('high', 'urgent')" }"#,
    );
    let mut e = Event::new("bench-1", "shop/eu-1", "order.created");
    e.set_extension("priority", "urgent");
    assert!(native.matches(&e) && sql.matches(&e));
    let mut g = c.benchmark_group("filter");
    g.bench_function("native", |b| {
        b.iter(|| black_box(native.matches(black_box(&e))))
    });
    g.bench_function("cesql", |b| {
        b.iter(|| black_box(sql.matches(black_box(&e))))
    });
    g.finish();
}

/// The enricher's logic, compiled natively: the baseline of a WASM handler call.
fn enrich_natively(event: &Event) -> Vec<Event> {
    let mut out = event.clone();
    out.id = format!("{}-enriched", event.id);
    out.ty = format!("{}.enriched", event.ty);
    out.set_extension("enrichedby", "enricher");
    out.set_extension("region", "bench");
    vec![out]
}

/// A dispatcher with one plugin (the component at `path`, one instance, and
/// `settings`: more keys of its `[[plugin]]` table) and one route to it.
fn one_route(rt: &tokio::runtime::Runtime, path: &str, settings: &str) -> Dispatcher {
    let text = format!(
        "[[plugin]]\nname = \"p\"\npath = {path:?}\ninstances = 1\n{settings}\n[[route]]\nname = \"r\"\nfilter = {{ exact = {{ type = \"bench.event\" }} }}\nhandler = \"p\"\n"
    );
    let config = Config::parse(Source::new("bench.toml", text), |_| None).expect("config");
    Dispatcher::new(rt.block_on(Runtime::build(&config)).expect("runtime"))
}

#[path = "support/floor.rs"]
mod floor;

fn handler(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio");
    let mut g = c.benchmark_group("handler");
    g.throughput(Throughput::Elements(1));
    for mode in ["reuse", "fresh"] {
        for (limits, label) in [
            ("", "limits_default"),
            (
                "timeout = \"1h\"\nmemory_limit = \"1GiB\"\nmax_emitted = 1000000\nmax_event_bytes = \"1GiB\"\n",
                "limits_loose",
            ),
        ] {
            let plugin = format!("mode = \"{mode}\"\nconfig = {{ region = \"bench\" }}\n{limits}");
            let dispatcher = one_route(&rt, plugin_artifacts::ENRICHER, &plugin);
            let e = event();
            g.bench_function(format!("dispatch_wasm_{mode}_{label}"), |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(dispatcher.dispatch(e.clone()).await) })
            });
        }
    }
    // The trivial handler of the target: the `fail` test plugin succeeds and
    // emits nothing for data it does not recognise, so this is the call alone,
    // with no emitted event to validate and route again.
    // Fresh mode as well: each event in a new instance.
    for mode in ["reuse", "fresh"] {
        let dispatcher = one_route(&rt, plugin_artifacts::FAIL, &format!("mode = \"{mode}\""));
        let e = event();
        let report = rt.block_on(dispatcher.dispatch(e.clone()));
        assert!(report.failure().is_none() && report.routes[0].emitted.is_empty());
        g.bench_function(format!("dispatch_wasm_{mode}_trivial"), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(dispatcher.dispatch(e.clone()).await) })
        });
    }
    // The floor under the trivial handler's two figures: bare wasmtime, the
    // same component and call, reused and in a new store per event.
    let floor = floor::Floor::new(plugin_artifacts::FAIL);
    let e = event();
    let (mut store, instance) = rt.block_on(floor.instance());
    assert_eq!(rt.block_on(floor::call(&mut store, &instance, &e)), 0);
    // One `block_on` around the whole loop, as criterion's async bencher does
    // for the router's figures; the store is borrowed by every iteration.
    g.bench_function("wasmtime_floor_reuse_trivial", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(floor::call(&mut store, &instance, &e).await);
                }
                started.elapsed()
            })
        })
    });
    g.bench_function("wasmtime_floor_fresh_trivial", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let (mut store, instance) = floor.instance().await;
                    black_box(floor::call(&mut store, &instance, &e).await);
                }
                started.elapsed()
            })
        })
    });
    g.bench_function("native_enrich", |b| {
        b.iter(|| black_box(enrich_natively(black_box(&e))))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the suite is run whole, on a shared 2-core machine.
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = decode, matching, filter, handler
}
criterion_main!(benches);
