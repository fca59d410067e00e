//! Sandbox figures (run with `cargo bench -p router --bench instances`): the
//! memory of an idle warm instance (the router's RSS before and after warming N
//! instances of the enricher, divided by N), and how far past its time limit an
//! endless loop is interrupted (median of 20).

mod support;

use support::rss_bytes;

use router::config::{Config, Source};
use router::dispatch::Dispatcher;
use router::event::Event;
use router::runtime::Runtime;

const N: usize = 200;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let text = format!(
            "[[plugin]]\nname = \"enricher\"\npath = {:?}\ninstances = {N}\n\n[[route]]\nname = \"r\"\nhandler = \"enricher\"\n",
            plugin_artifacts::ENRICHER
        );
        let config = Config::parse(Source::new("bench.toml", text), |_| None).expect("config");
        let dispatcher = Dispatcher::new(Runtime::build(&config).await.expect("runtime"));
        // One event first, so code and allocator caches are warm before measuring.
        dispatcher.dispatch(Event::new("warm", "/bench", "t")).await;
        let before = rss_bytes();
        let idle = dispatcher
            .runtime()
            .prewarm("enricher", N)
            .await
            .expect("prewarm");
        let after = rss_bytes();
        let per = after.saturating_sub(before) as f64 / idle.max(1) as f64;
        let text = format!(
            "[[plugin]]\nname = \"hostile\"\npath = {:?}\ntimeout = \"100ms\"\nbreaker_threshold = 0\n\n[[route]]\nname = \"r\"\nhandler = \"hostile\"\n",
            plugin_artifacts::HOSTILE
        );
        let config = Config::parse(Source::new("bench.toml", text), |_| None).expect("config");
        let looping = Dispatcher::new(Runtime::build(&config).await.expect("runtime"));
        let mut overshoot = Vec::new();
        for i in 0..20 {
            let mut e = Event::new(format!("loop-{i}"), "/bench", "t");
            e.data = Some(bytes::Bytes::from_static(b"loop"));
            let started = std::time::Instant::now();
            let report = looping.dispatch(e).await;
            assert!(report.failure().is_some());
            overshoot.push(started.elapsed().as_secs_f64() * 1000.0 - 100.0);
        }
        overshoot.sort_by(f64::total_cmp);
        println!(
            "endless loop with timeout 100ms, epoch tick {} ms: interrupted after the limit by median {:.1} ms (min {:.1}, max {:.1}) over 20",
            router::plugin::EPOCH_TICK.as_millis(),
            overshoot[10],
            overshoot[0],
            overshoot[19]
        );
        println!(
            "warm instances: {idle}; RSS {:.1} MiB -> {:.1} MiB; {:.0} KiB per idle warm instance",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            per / 1024.0
        );
    });
}
