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
pipeline = open(os.path.join(out, "pipeline.txt")).read()
instances = open(os.path.join(out, "instances.txt")).read()
reload = open(os.path.join(out, "reload.txt")).read()


def crit(name):
    """Median of a criterion benchmark, in nanoseconds."""
    m = re.search(re.escape(name) + r"\s+time:\s+\[\S+ \S+ (\S+) (\S+)", pipeline)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"ps": 1e-3, "ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}[unit]


s, b, o, idle = e2e["single"], e2e["batch"], e2e["open"], e2e["idle"]
wasm = crit("handler/dispatch_wasm_reuse_limits_default")
print(f"""# Benchmarks

Measured on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},
commit `{subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}`.
Reproduce with `bash bench/run.sh` (servers pinned to core 0, the load generator to
core 1; baseline and router alternate). The machine is shared and noisy: read the
ratios and CPU times, which are steadier than raw throughput.

## End to end over HTTP (loopback)

| figure | router | baseline | ratio (median, min-max) | target |
| --- | --- | --- | --- | --- |
| one event per request, 64 connections, req/s | {s['router_rps']:.0f} | {s['baseline_rps']:.0f} (bare axum) | {s['ratio']:.2f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) | >= 0.70 |
| server CPU per event, one event per request | {s['router_cpu_us']:.1f} us | {s['baseline_cpu_us']:.1f} us | {s['router_cpu_us'] / s['baseline_cpu_us']:.2f} | |
| batches of 100 events, events/s (load tool on the other core) | {b['events_per_s']:.0f} | | | >= 300,000 |
| server CPU per event, batched | {b['cpu_us']:.2f} us | | | |
| open loop at {o['rate']} req/s (half the max): p99 / p99.9 | {o['router']['p99']} / {o['router']['p999']} us | {o['baseline']['p99']} / {o['baseline']['p999']} us | | p99 < 1 ms, p99.9 < 5 ms |
| failed requests in all runs | {s['failed'] + b['failed'] + o['failed']} | | | 0 |
| idle RSS, `router serve` on config/router.toml | {idle['rss_mib']:.1f} MiB | | | < 40 MiB |
| start-up to the first `GET /healthz` (3 components compiled) | {idle['startup_s'] * 1000:.0f} ms | | | < 500 ms with a warm cache |

## In process (criterion, medians)

| figure | value | baseline | ratio |
| --- | --- | --- | --- |
| decode binary mode, 256 B | {crit('decode/binary_256B'):.0f} ns | | |
| decode structured mode, 256 B | {crit('decode/structured_256B'):.0f} ns | | |
| decode a batch of 100 x 256 B, per event | {crit('decode/batch_100x256B') / 100:.0f} ns | | |
| match 1 / 100 / 1,000 routes | {crit('match/routes/1'):.0f} / {crit('match/routes/100'):.0f} / {crit('match/routes/1000'):.0f} ns | | |
| dispatcher + reused WASM instance (enricher) | {wasm / 1000:.2f} us | native enricher {crit('handler/native_enrich'):.0f} ns | {wasm / crit('handler/native_enrich'):.1f}x (target: <= 3 us) |
| dispatcher + fresh instance | {crit('handler/dispatch_wasm_fresh_limits_default') / 1000:.1f} us | reused {wasm / 1000:.2f} us | {crit('handler/dispatch_wasm_fresh_limits_default') / wasm:.1f}x (target: <= 10 us) |
| limits on (defaults) vs loose, reused instance | {wasm / 1000:.2f} us | {crit('handler/dispatch_wasm_reuse_limits_loose') / 1000:.2f} us | {wasm / crit('handler/dispatch_wasm_reuse_limits_loose'):.2f} |

## Sandbox and reload

```
{instances.strip()}
{reload.strip()}
```
""")
