#!/usr/bin/env python3
"""Turns the outputs of bench/run.sh into BENCHMARKS.md (markdown on stdout)."""

import json
import os
import re
import subprocess
import sys
import time

out = sys.argv[1]
e2e = json.load(open(os.path.join(out, "e2e.json")))
soak_path = os.path.join(out, "soak.json")
soak = json.load(open(soak_path)) if os.path.exists(soak_path) else None


NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes")


def notes(section):
    """The hand-written, dated analyses kept under a section
    (`bench/notes/SECTION.md`): a run rewrites the figures, never them."""
    path = os.path.join(NOTES, f"{section}.md")
    if not os.path.exists(path):
        return ""
    return ("\n*Notes written by hand, each dated (the figures above are this run's):*\n\n"
            + open(path).read().strip() + "\n\n")


def with_notes(text, section):
    """A generated section followed by its notes, or nothing when the run did
    not produce the section."""
    return text.rstrip("\n") + "\n" + (notes(section) or "\n") if text else ""


def soak_row():
    if soak is None:
        return ""
    return (f"| RSS over a {soak['seconds'] // 60}-minute soak at {soak['rate']} req/s (`bench/soak.py`): "
            f"start / end (max) | {soak['rss_start_mib']:.1f} / {soak['rss_end_mib']:.1f} MiB "
            f"({soak['rss_max_mib']:.1f}) | | end / start {soak['growth']:.2f} | no growth |\n")


def text(name):
    """A benchmark's saved output, or "" when this run did not make it."""
    path = os.path.join(out, name)
    return open(path).read() if os.path.exists(path) else ""


pipeline = text("pipeline.txt")
instances = text("instances.txt")
reload = text("reload.txt")
ecommerce = text("ecommerce.txt")
isolation_path = os.path.join(out, "isolation.json")
shadow_path = os.path.join(out, "shadow.json")
redis_path = os.path.join(out, "redis.json")
durable = json.load(open(redis_path)) if os.path.exists(redis_path) else None
cluster_path = os.path.join(out, "cluster.json")
cluster = json.load(open(cluster_path)) if os.path.exists(cluster_path) else None


def crit(name):
    """Median of a criterion benchmark, in nanoseconds."""
    m = re.search(re.escape(name) + r"\s+time:\s+\[\S+ \S+ (\S+) (\S+)", pipeline)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"ps": 1e-3, "ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]


startup_path = os.path.join(out, "startup.json")
startup = json.load(open(startup_path)) if os.path.exists(startup_path) else None


def startup_section():
    if startup is None:
        return ""
    if "skipped" in startup:
        return f"## Start-up with large components\n\nNot measured: {startup['skipped']}.\n\n"
    st = startup
    sizes = " / ".join(f"{s:.1f}" for s in st["sizes_mb"])
    return f"""## Start-up with large components (`bench/startup.py`)

Three Python handler components built with componentize-py ({sizes} MB; each
embeds the interpreter, and they differ in one constant, so each is compiled on its
own). `router serve` is timed from exec to its "router serving" log line, {st['runs']}
alternating runs of each kind: with an empty `[compile_cache]` directory (every
component compiled by cranelift), with the cache that run left, and with no plugins
at all (the process's own floor). Medians (min-max), ms.

| figure | ms | target |
| --- | --- | --- |
| three components, cold (compiled) | {st['cold_ms']:.0f} ({st['cold_range'][0]:.0f}-{st['cold_range'][1]:.0f}) | |
| three components, warm compile cache | {st['warm_ms']:.0f} ({st['warm_range'][0]:.0f}-{st['warm_range'][1]:.0f}) | < 500 |
| no plugins (floor) | {st['floor_ms']:.0f} | |
| cold / warm | {st['cold_ms'] / st['warm_ms']:.0f}x | |

"""


languages_calls_path = os.path.join(out, "languages.txt")
languages_cpu_path = os.path.join(out, "languages.json")


def languages_section():
    """Per language: the same enricher built with each SDK (router/benches/languages.rs
    in process; bench/languages.py over HTTP)."""
    if not os.path.exists(languages_calls_path):
        return ""
    rows = []
    for line in open(languages_calls_path):
        if line.startswith("JSON "):
            rows = json.loads(line[5:])
    cpu = json.load(open(languages_cpu_path))["languages"] if os.path.exists(languages_cpu_path) else {}
    target = {"rust": "", "python": "<= 2.5x", "javascript": "<= 4x"}
    table = ""
    for r in rows:
        c = cpu.get(r["lang"])
        over_http = (f"{c['requests_per_s']:.0f} | {c['cpu_us_per_request']:.1f} us | "
                     f"{c['cpu_ratio']:.2f}x ({c['cpu_ratio_min']:.2f}-{c['cpu_ratio_max']:.2f}) | {target[r['lang']]}"
                     if c else "| | |")
        table += (f"| {r['lang']} | {r['size_bytes'] / 1e6:.2f} MB | {r['compile_cold_ms']:.0f} ms | "
                  f"{r['compile_cached_ms']:.1f} ms | {r['warm_instance_kib']:.0f} KiB | "
                  f"{r['reused_call_us']:.1f} us | {r['fresh_call_us']:.0f} us | {over_http} |\n")
    return f"""## Plugins in Rust, Python and JavaScript

The same enricher (copies the event under a new id and type and adds two
extensions; the copy is routed again) built with each SDK: `plugins/enricher`,
`plugins/python/enricher`, `plugins/js/enricher`. In process
(`cargo bench -p router --bench languages`, same event): component size; the
time a new process takes to build a runtime with it, with the compile cache off
(cold: cranelift compiles it) and from a warm cache, median of 3; the memory of
an idle warm instance (RSS before and after instantiating 16, divided by 16:
pages an instance touches before its first call; its linear memory is mapped
copy-on-write from the component's image, 12.3 MiB initial for Python and 9.1
MiB for JavaScript); the median time of one call through the dispatcher (the
emitted event routed too) on a reused and on a fresh instance. Over HTTP (`bench/languages.py`): wrk, 1
thread, 32 connections, one binary-mode event per request, router on core 0 and
wrk on core 1, the three routers in turn, 5 rounds; CPU per request as the median
of the per-round ratios to Rust (min-max).

| language | size | load, cold | load, cached | warm instance | call, reused | call, fresh | req/s | CPU per request | CPU / Rust | target |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{table}
"""


def isolation_section():
    if not os.path.exists(isolation_path):
        return ""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from isolation import markdown
    return markdown(json.load(open(isolation_path))) + "\n"


archive_path = os.path.join(out, "archive.txt")


def archive_section():
    if not os.path.exists(archive_path):
        return ""
    return f"""## Archive and replay (`cargo bench -p router --bench archive`)

The same load (structured events of about 300 bytes, one route appending to a
journal) with no archive and with a file archive synced every second (the
default) or before every answer, alternating; the cost is the difference in
the process's CPU per event. Then one replay of a file archive through its
route, without a rate bound.

```
{open(archive_path).read().strip()}
```

"""


def shadow_section():
    if not os.path.exists(shadow_path):
        return ""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from shadow import markdown
    return markdown(json.load(open(shadow_path))) + "\n"


def durable_section():
    if durable is None:
        return ""
    d1, db, di = durable["single"], durable["batch"], durable["ingest_only"]
    return f"""## Durable mode (Redis Streams, `bench/redis.py`)

redis-server with AOF (`appendfsync everysec`) started by the script, pinned to core
0; its own `redis-benchmark` XADD (256-byte field, 64 clients, pinned to core 1) is
the baseline, measured in the same run, alternating. The router may run on both
cores, the load generator is pinned to core 1. Accepted = answered 202 after Redis acknowledged the XADD;
consumed = routed to the enricher plugin and acknowledged (with the drain after the
load stops). The first row's router also routes the stream while it ingests (one
process doing both, on the same two cores); the ingest-only row is a process with
`consume = false`, as in a deployment whose ingest and workers scale apart.

| figure | router | baseline | ratio (median, min-max) | target |
| --- | --- | --- | --- | --- |
| one event per request, accepted events/s | {d1['accepted_per_s']:.0f} | {d1['xadd_per_s']:.0f} XADD/s | {d1['ratio']:.2f} ({d1['ratio_min']:.2f}-{d1['ratio_max']:.2f}) | >= 0.4 (50,000/s) |
| one event per request, ingest-only router (`consume = false`), accepted events/s | {di['accepted_per_s']:.0f} | {di['xadd_per_s']:.0f} XADD/s | {di['ratio']:.2f} ({di['ratio_min']:.2f}-{di['ratio_max']:.2f}) | >= 0.4 (50,000/s) |
| batches of 100 (one append script per request), accepted events/s | {db['accepted_per_s']:.0f} | {db['xadd_per_s']:.0f} XADD/s pipelined 16 deep | {db['ratio']:.2f} ({db['ratio_min']:.2f}-{db['ratio_max']:.2f}) | >= 0.4 (150,000/s) |
| consumed events/s (single / batched runs) | {d1['consumed_per_s']:.0f} / {db['consumed_per_s']:.0f} | | | |
| failed requests | {d1['failed'] + db['failed'] + di['failed']} | | | 0 |
"""


def cluster_section():
    if cluster is None:
        return ""
    one, c3, c3r = cluster["single"], cluster["cluster"], cluster["cluster_replicas"]

    def row(name, r, ratio):
        return (f"| {name} | {r['accepted_per_s']:.0f} | {r['consumed_per_s']:.0f} | {r['router_cpu_us']:.1f} "
                f"| {r['redis_cpu_us']:.1f} | {ratio} |\n")

    return f"""## One Redis against a Redis Cluster (`bench/cluster.py`)

One redis-server, a cluster of three masters, and three masters with a replica each,
all started by the script without persistence and pinned to core 0 (this machine
has two cores: a cluster cannot be faster here; the figures are the per-event
costs). The router (`shards = 3` on the clusters; `replicas = 1` with replicas)
routes every event to the enricher; the load generator (core 1) sends one event
per request on 64 connections for 5 s; the rounds alternate. Medians; CPU per
accepted event (router process; all Redis servers together).

| setup | accepted events/s | consumed events/s | router CPU us/event | Redis CPU us/event | accepted vs one Redis (median, min-max) |
| --- | --- | --- | --- | --- | --- |
{row("one Redis", one, "1")}{row("3 masters", c3, f"{c3['ratio']:.2f} ({c3['ratio_min']:.2f}-{c3['ratio_max']:.2f})")}{row("3 masters + 3 replicas, `replicas = 1`", c3r, f"{c3r['ratio']:.2f} ({c3r['ratio_min']:.2f}-{c3r['ratio_max']:.2f})")}
Failed requests: {one['failed'] + c3['failed'] + c3r['failed']}.
"""


s, b, b2, o, idle = e2e["single"], e2e["batch"], e2e["batch_2cores"], e2e["open"], e2e["idle"]


def axum_spread(t):
    """Bare axum's own CPU per event over the rounds of figure `t`, when the
    run recorded it: the same server measured again and again, so its range is
    the host's noise during that figure."""
    lo, hi = t.get("baseline_cpu_us_min"), t.get("baseline_cpu_us_max")
    if lo is None or hi is None:
        return ""
    return f" (rounds {lo:.1f}-{hi:.1f})"


def trivial_rows():
    rows = ""
    for key, setup in (("single_trivial", "load tool, 64 connections"), ("single_trivial_wrk", "wrk, 1 thread, 32 connections")):
        t = e2e.get(key)
        if t is None:
            continue
        rows += (f"| the same, trivial handler (emits nothing), {setup}, req/s | {t['router_rps']:.0f} | {t['baseline_rps']:.0f} (bare axum) "
                 f"| {t['ratio']:.2f} ({t['ratio_min']:.2f}-{t['ratio_max']:.2f}) | >= 0.85 |\n"
                 f"| server CPU per event, trivial handler, {setup} | {t['router_cpu_us']:.1f} us | {t['baseline_cpu_us']:.1f} us{axum_spread(t)} "
                 f"| {t.get('cpu_ratio', t['router_cpu_us'] / t['baseline_cpu_us']):.2f} | <= 1.25 |\n")
        f = t.get("floor")
        if f is not None:
            rows += (f"| the floor under it, {setup}: bare axum + decoding + a reused instance in bare wasmtime "
                     f"(`floor-server`), req/s / CPU per event | {f['rps']:.0f} / {f['cpu_us']:.1f} us | bare axum "
                     f"| {f['rps_ratio']:.2f} / {f['cpu_ratio']:.2f} | |\n"
                     f"| router CPU per event over the floor's, {setup} | | | {f['router_over_floor_cpu']:.2f} | |\n")
        rows += split_row(t, f"trivial handler, {setup}")
    return rows


def split_row(t, what):
    """Figure `t`'s CPU per event in user space and in the kernel, and the load
    tool's sleeps per request, for the router, bare axum and the floor: the
    kernel's share grows with the sleeps, each ended by a wake-up in the
    server's write."""
    split = t.get("split")
    if not split or "router" not in split or "baseline" not in split:
        return ""
    cell = lambda x: (f"{x['user_us_per_event']:.1f} / {x['system_us_per_event']:.1f} us, "
                      f"{x['client_sleeps_per_request']:.3f}")
    floor = f"floor: {cell(split['floor'])}" if "floor" in split else ""
    return (f"| {what}: CPU per event in user space / in the kernel, and the load tool's sleeps per request "
            f"| {cell(split['router'])} | {cell(split['baseline'])} | {floor} | |\n")


def minimal_rows():
    """The same closed loops with `Prefer: return=minimal`: what the full
    report (the router's default answer) costs."""
    rows = ""
    for key, full, handler in (("single_minimal", "single", "enricher"),
                               ("single_trivial_minimal", "single_trivial", "trivial handler")):
        m, f = e2e.get(key), e2e.get(full)
        if m is None or f is None:
            continue
        rows += (f"| the same, {handler}, the client asking for the minimal report (`Prefer: return=minimal`), "
                 f"load tool, 64 connections: req/s / CPU per event | {m['router_rps']:.0f} / {m['router_cpu_us']:.1f} us "
                 f"| {m['baseline_rps']:.0f} / {m['baseline_cpu_us']:.1f} us (bare axum) "
                 f"| {m['ratio']:.2f} ({m['ratio_min']:.2f}-{m['ratio_max']:.2f}) / "
                 f"{m['cpu_ratio']:.2f} (full report: {f['cpu_ratio']:.2f}) | |\n")
    return rows


def enricher_floor_rows():
    f = s.get("floor")
    if f is None:
        return ""
    return (f"| the floor under it: bare axum + decoding + a reused instance of the enricher in bare wasmtime, its "
            f"event lifted and dropped (`floor-server`), req/s / CPU per event | {f['rps']:.0f} / {f['cpu_us']:.1f} us "
            f"| bare axum | {f['rps_ratio']:.2f} / {f['cpu_ratio']:.2f} | |\n"
            f"| router CPU per event over the floor's, enricher | | | {f['router_over_floor_cpu']:.2f} | |\n"
            + split_row(s, "enricher, load tool, 64 connections"))


def failed():
    """Failed requests over every end-to-end run, the floor servers' included:
    each figure of e2e.json that ran a load says how many failed."""
    runs = [v for v in e2e.values() if isinstance(v, dict)]
    runs += [v["floor"] for v in runs if isinstance(v.get("floor"), dict)]
    return sum(r.get("failed", 0) for r in runs)


def floor_text():
    """What the floor server says about the per-request targets."""
    wrk, lg = e2e.get("single_trivial_wrk", {}), e2e.get("single_trivial", {})
    fw, fl, fb = wrk.get("floor"), lg.get("floor"), b2.get("floor")
    if fw is None or fl is None or fb is None:
        return ""
    def setup(name, t, f):
        # In units of axum's CPU per request, from the medians of the per-round
        # ratios (the ratios of the table).
        router, floor = t["cpu_ratio"], f["cpu_ratio"]
        return (f"{name}: the floor costs {floor:.2f}x axum's CPU per request and serves {f['rps_ratio']:.2f}x "
                f"axum's requests; it takes {(floor - 1) / 0.25 * 100:.0f} % of the 0.25 that the target allows "
                f"over axum, and the router's own work adds {router - floor:.2f} more "
                f"(router / floor {f['router_over_floor_cpu']:.2f}x per round)")
    return f"""
**The floor under the per-request targets.** `floor-server`
(`router/benches/support/floor_server.rs`) is the bare axum baseline plus the
work no WASM router can skip: the router's binary-mode decoder and one call of
the same trivial component on a reused instance in bare wasmtime (the router's
engine settings and bindings), answering as axum does; no routing, limits,
metrics, timers or report. Measured in the same rounds as the router and axum
(medians of the per-round ratios):

- {setup("wrk, 1 thread, 32 connections", wrk, fw)}.
- {setup("load tool, 64 connections", lg, fl)}.
{enricher_floor_text()}
The estimate of that work in the issue (decode 0.3 us and a call 1.3 us) comes
from in-process loops with hot caches; served between requests, with the
kernel's network stack and hyper running in between, the same work costs
{(fw['cpu_ratio'] - 1) * wrk['baseline_cpu_us']:.1f} us (wrk) and {(fl['cpu_ratio'] - 1) * lg['baseline_cpu_us']:.1f} us (load tool). Batches are another matter: the floor takes
{fb['events_per_s']:.0f} events/s ({fb['cpu_us']:.2f} us of CPU per event) where the router takes
{b2['events_per_s']:.0f} ({b2['cpu_us']:.2f} us){batch_verdict()}.
"""


def batch_verdict():
    if b2["events_per_s"] >= 350_000:
        return ", over the 350,000 of the target"
    return (": nothing physical stops 350,000 there; the router's per-event work (dispatch, dedup, "
            "metrics, the report) does")


def enricher_floor_text():
    """The enricher's target (<= 1.5x axum's CPU) against its own floor."""
    f = s.get("floor")
    if f is None:
        return ""
    return (f"- the enricher (emits one event), load tool, 64 connections: its floor (the enricher called in bare "
            f"wasmtime, the emitted event lifted and dropped) costs {f['cpu_ratio']:.2f}x axum's CPU per request, "
            f"{(f['cpu_ratio'] - 1) / 0.5 * 100:.0f} % of the 0.5 its target allows over axum; the router "
            f"(which also checks the emitted event, routes it again and reports it) costs "
            f"{f['router_over_floor_cpu']:.2f}x the floor per round.\n")


def batch_floor_row():
    f = b2.get("floor")
    if f is None:
        return ""
    return (f"| the floor under it: `floor-server` (bare axum, decoding, the events called one after the other on a "
            f"reused instance in bare wasmtime), both cores | {f['events_per_s']:.0f} ({f['cpu_us']:.2f} us CPU per event) "
            f"| | router / floor {b2['events_per_s'] / f['events_per_s']:.2f} | |\n")


def batch_enricher_row():
    be = e2e.get("batch_enricher")
    if be is None:
        return ""
    return (f"| batches of 100 events, enricher (emits one event each), events/s, both cores "
            f"| {be['events_per_s']:.0f} ({be['cpu_us']:.2f} us CPU per event) | | | |\n")


def over_1ms_row():
    if "over_1ms" not in o:
        return ""
    (r, b), (rw, bw) = o["over_1ms"], o["slow_windows"]
    return (f"| open loop, requests over 1 ms (median share) / 100 ms windows holding one (median, of 100) "
            f"| {r * 100:.2f} % / {rw:.0f} | {b * 100:.2f} % / {bw:.0f} | | p99 < 1 ms: under 1 % |\n")


def rounds_text():
    if "rounds" not in s:
        return ""
    return (" The one-event-per-request\nfigures below keep bare axum, the router and the floor up "
            f"together and measure them in\nturn, {s['rounds']} rounds of {s['round_seconds']} s each: "
            "the ratios are the medians of the\nper-round ratios, each from measurements seconds apart.")


def open_busy_row():
    if "router_busy" not in o:
        return ""
    return (f"| open loop, core 0 busy (CPU per request x requests per second) / CPU per request "
            f"| {o['router_busy'] * 100:.0f} % / {o['router_cpu_us']:.1f} us "
            f"| {o['baseline_busy'] * 100:.0f} % / {o['baseline_cpu_us']:.1f} us | | |\n")


def stall_row():
    one, both = o.get("stalls_one_core"), o.get("stalls_both_cores")
    if one is None:
        return ""
    return (f"| time the host kept a spinning probe off its core: one core busy / both busy "
            f"| {one['stalled_fraction'] * 100:.2f} % (largest {one['largest_ms']:.1f} ms) "
            f"/ {both['stalled_fraction'] * 100:.2f} % (largest {both['largest_ms']:.1f} ms) | | | |\n")


instructions_path = os.path.join(out, "instructions.json")
instructions = json.load(open(instructions_path)) if os.path.exists(instructions_path) else None


def instructions_section():
    """Instructions per request under callgrind (bench/instructions.py): the
    user-space work of each server, exact where CPU time is noisy."""
    if not instructions:
        return ""
    rows, misses = "", ""
    for name, handler in (("trivial", "trivial handler (emits nothing)"), ("enricher", "enricher (emits one event)")):
        t = instructions.get(name)
        if t is None:
            continue
        rows += (f"| one event per request, {handler} | {t['router']['per_request']:,.0f} "
                 f"| {t['floor']['per_request']:,.0f} | {t['axum']['per_request']:,.0f} "
                 f"| {t['router_over_floor']:.2f} | {t['floor_over_axum']:.2f} | {t['router_over_axum']:.2f} |\n")
        # Runs of bench/instructions.py before the cache simulation have no misses.
        if "d1_misses" not in t["router"]:
            continue
        for key, what in (("d1_misses", "data, first level"), ("i1_misses", "code, first level"),
                          ("l2_misses", "data and code, L2")):
            r, f, a = (t[s][key] for s in ("router", "floor", "axum"))
            # L2 misses are a fraction of one a request.
            d = 2 if key == "l2_misses" else 0
            misses += (f"| {handler}: {what} | {r:,.{d}f} | {f:,.{d}f} | {a:,.{d}f} "
                       f"| {r - f:+,.{d}f} | {f - a:+,.{d}f} |\n")
    if misses:
        misses = f"""
Cache lines missed per request in callgrind's simulation of one cache geometry on
every host (`bench/instructions.py`: 48 KiB of data and 32 KiB of code in the first
level, a 2 MiB L2): a miss that the next level serves costs more than most
instructions, and is where the same instructions take longer in one server than in
another.

| figure | router | floor | bare axum | router - floor | floor - axum |
| --- | --- | --- | --- | --- | --- |
{misses}"""
    return f"""## Instructions per request (callgrind)

The user-space instructions of a request, counted by `valgrind --tool=callgrind`
(`bench/instructions.py`): the same for the same binary and requests whatever the
host is doing, so a change of a percent to the router's own work shows here when the
CPU times above cannot tell it from noise. The kernel's share of a request (its writes,
the client's wake-ups) is not counted, so these ratios are not section 2's.

| figure | router | floor | bare axum | router / floor | floor / axum | router / axum |
| --- | --- | --- | --- | --- | --- | --- |
{rows}{misses}
"""


def in_process_section():
    if not pipeline:
        return ""
    return f"""## In process (criterion, medians)

| figure | value | baseline | ratio |
| --- | --- | --- | --- |
| decode binary mode, 256 B | {crit('decode/binary_256B'):.0f} ns | | |
| decode structured mode, 256 B | {crit('decode/structured_256B'):.0f} ns | | |
| decode a batch of 100 x 256 B, per event | {crit('decode/batch_100x256B') / 100:.0f} ns | | |
| match 1 / 100 / 1,000 routes | {crit('match/routes/1'):.0f} / {crit('match/routes/100'):.0f} / {crit('match/routes/1000'):.0f} ns | | |
| match 1 / 100 / 1,000 CESQL routes | {crit('match/sql_routes/1'):.0f} / {crit('match/sql_routes/100'):.0f} / {crit('match/sql_routes/1000'):.0f} ns | | |
| one CESQL filter (`type = ... AND source LIKE ... AND x IN (...)`) | {crit('filter/cesql'):.0f} ns | same filter in the native dialects {crit('filter/native'):.0f} ns | {crit('filter/cesql') / crit('filter/native'):.1f}x |
| dispatcher + reused WASM instance (enricher) | {wasm / 1000:.2f} us | native enricher {crit('handler/native_enrich'):.0f} ns | {wasm / crit('handler/native_enrich'):.1f}x (target: <= 3 us) |
| dispatcher + reused WASM instance, trivial handler (emits nothing) | {crit('handler/dispatch_wasm_reuse_trivial') / 1000:.2f} us | enricher {wasm / 1000:.2f} us | {crit('handler/dispatch_wasm_reuse_trivial') / wasm:.2f} (target: <= 3 us) |
| dispatcher + fresh instance, trivial handler | {crit('handler/dispatch_wasm_fresh_trivial') / 1000:.1f} us | reused {crit('handler/dispatch_wasm_reuse_trivial') / 1000:.2f} us | {crit('handler/dispatch_wasm_fresh_trivial') / crit('handler/dispatch_wasm_reuse_trivial'):.1f}x (target: <= 10 us) |
| the same two calls in bare wasmtime (same component, engine settings and bindings; no router): reused / fresh | {crit('handler/wasmtime_floor_reuse_trivial') / 1000:.2f} / {crit('handler/wasmtime_floor_fresh_trivial') / 1000:.1f} us | the router's {crit('handler/dispatch_wasm_reuse_trivial') / 1000:.2f} / {crit('handler/dispatch_wasm_fresh_trivial') / 1000:.1f} us | router / bare: {crit('handler/dispatch_wasm_reuse_trivial') / crit('handler/wasmtime_floor_reuse_trivial'):.2f} / {crit('handler/dispatch_wasm_fresh_trivial') / crit('handler/wasmtime_floor_fresh_trivial'):.2f} |
| dispatcher + fresh instance, enricher | {crit('handler/dispatch_wasm_fresh_limits_default') / 1000:.1f} us | reused {wasm / 1000:.2f} us | {crit('handler/dispatch_wasm_fresh_limits_default') / wasm:.1f}x |
| limits on (defaults) vs loose, reused instance | {wasm / 1000:.2f} us | {crit('handler/dispatch_wasm_reuse_limits_loose') / 1000:.2f} us | {wasm / crit('handler/dispatch_wasm_reuse_limits_loose'):.2f} |

"""


def examples_section():
    if not ecommerce:
        return ""
    return f"""## Examples: the e-commerce seed's latency (`examples/ecommerce-catalog`)

The seed asks for under 100 ms end to end. Stock and price events at a fixed rate
through durable mode (Redis), the catalog plugin, and a forward to the storefront
webhook; the baseline is a direct POST to the same webhook.

```
{ecommerce.strip()}
```

"""


def sandbox_section():
    if not (instances or reload):
        return ""
    return f"""## Sandbox and reload

```
{instances.strip()}
{reload.strip()}
```
"""


wasm = crit("handler/dispatch_wasm_reuse_limits_default")
# The run's span: bench/run.sh notes when it began, and the report comes last.
started_path = os.path.join(out, "started")
started = open(started_path).read().strip() if os.path.exists(started_path) else None
span = (f"{started}-{time.strftime('%H:%M', time.gmtime())} UTC" if started
        else time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
print(f"""# Benchmarks

Measured on {os.cpu_count()} cores, {span},
commit `{subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}`.
Reproduce with `bash bench/run.sh` (servers pinned to core 0, the load generator to
core 1; baseline and router alternate). The machine is shared and noisy: read the
ratios and CPU times, which are steadier than raw throughput.{rounds_text()}

## End to end over HTTP (loopback)

| figure | router | baseline | ratio (median, min-max) | target |
| --- | --- | --- | --- | --- |
| one event per request, 64 connections, enricher (emits one event), req/s | {s['router_rps']:.0f} | {s['baseline_rps']:.0f} (bare axum) | {s['ratio']:.2f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | >= 0.70 |
| server CPU per event, one event per request | {s['router_cpu_us']:.1f} us | {s['baseline_cpu_us']:.1f} us{axum_spread(s)} | {s.get('cpu_ratio', s['router_cpu_us'] / s['baseline_cpu_us']):.2f} | <= 1.5 |
{enricher_floor_rows()}{trivial_rows()}{minimal_rows()}| batches of 100 events, trivial handler, events/s, router on core 0 (load tool on core 1) | {b['events_per_s']:.0f} | | | |
| batches of 100 events, trivial handler, events/s, router on both cores (load tool on core 1) | {b2['events_per_s']:.0f} | | | >= 350,000 |
{batch_floor_row()}| server CPU per event, batched (core 0 / both cores) | {b['cpu_us']:.2f} / {b2['cpu_us']:.2f} us | | | |
{batch_enricher_row()}| open loop at {o['rate']} req/s (half the trivial route's max), median of {o.get('runs', 1)} alternating runs: p50 / p90 | {o['router']['p50']} / {o['router']['p90']} us | {o['baseline']['p50']} / {o['baseline']['p90']} us | | |
| open loop, p99 / p99.9 | {o['router']['p99']} / {o['router']['p999']} us | {o['baseline']['p99']} / {o['baseline']['p999']} us | | p99 < 1 ms, p99.9 < 5 ms |
| open loop, p99 of each run | {', '.join(str(x) for x in o.get('router_p99s', []))} us | {', '.join(str(x) for x in o.get('baseline_p99s', []))} us | | |
{over_1ms_row()}{open_busy_row()}{stall_row()}| failed requests in all runs | {failed()} | | | 0 |
| idle RSS, `router serve` on config/router.toml | {idle['rss_mib']:.1f} MiB | | | < 40 MiB |
{soak_row()}| start-up to the first `GET /healthz`, demo configuration, warm compile cache (median of 3 starts) | {idle['startup_s'] * 1000:.0f} ms | | | < 500 ms with a warm cache |
{floor_text()}{notes("e2e")}
{instructions_section()}{in_process_section()}{with_notes(isolation_section(), "isolation")}{with_notes(archive_section(), "archive")}{with_notes(shadow_section(), "shadow")}{with_notes(durable_section(), "durable")}{with_notes(cluster_section(), "cluster")}
{with_notes(startup_section(), "startup")}{with_notes(languages_section(), "languages")}{examples_section()}{sandbox_section()}""")
