#!/usr/bin/env python3
"""The cost of a shadow version on the live path (called by bench/run.sh; JSON on stdout).

One route to the enricher (emits one event, which no route takes). The router
runs the same configuration with and without `shadow` on the plugin (the same
component with another `config`, so every comparison is `different` and keeps
a difference), in alternating pairs (without, with, without, with, ...). The
load tool sends an open loop of events (latency from the scheduled send time)
at SHADOW_RATE req/s; each run reports p50/p99/max, the requests that failed,
and for the shadowed runs the comparisons made and the shadow calls dropped
(`GET /admin/plugins/enricher/shadow`): a shadow that falls behind drops work
rather than delaying the live path.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BIN, PLUGINS, Server  # noqa: E402

PAIRS = int(os.environ.get("SHADOW_PAIRS", "3"))
SECONDS = os.environ.get("SHADOW_SECONDS", "6")
RATE = os.environ.get("SHADOW_RATE", "1000")
PORT, ADMIN_PORT = 18280, 18281
# The router on core 0, the load tool on core 1 (as in bench/isolation.py).
CPUS = os.environ.get("SHADOW_CPUS", "0")


def config(directory, shadow):
    """The configuration, with a shadow on the plugin when `shadow`."""
    path = os.path.join(directory, f"shadow-{'on' if shadow else 'off'}.toml")
    enricher = os.path.join(PLUGINS, "enricher.wasm")
    candidate = (f'shadow = {{ path = "{enricher}", config = {{ region = "candidate" }}, '
                 f'ignore = ["time"] }}\n') if shadow else ""
    with open(path, "w") as f:
        f.write(f"""[admin]
listen = "127.0.0.1:{ADMIN_PORT}"
[ingest]
max_in_flight = 100000
[[plugin]]
name = "enricher"
path = "{enricher}"
instances = 8
config = {{ region = "live" }}
{candidate}
[[route]]
name = "bench"
filter = {{ exact = {{ type = "bench.event" }} }}
handler = "enricher"
""")
    return path


def shadow_report():
    """The shadow's counts and drops, from the admin API."""
    url = f"http://127.0.0.1:{ADMIN_PORT}/admin/plugins/enricher/shadow"
    with urllib.request.urlopen(url, timeout=10) as answer:
        report = json.load(answer)
    return {"compared": sum(report["counts"].values()), "dropped": report["dropped"],
            "different": report["counts"]["different"]}


def latency(run):
    argv = ["taskset", "-c", "1", os.path.join(BIN, "loadgen"), "--addr", f"127.0.0.1:{PORT}", "--mode", "rate",
            "--rate", RATE, "--connections", "8", "--duration", SECONDS, "--run", run]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    return {"p50": r["latency_us"]["p50"], "p99": r["latency_us"]["p99"], "max": r["latency_us"]["max"],
            "failed": r["failed"], "acked": r["acked_events"]}


def measure(binary, config_path, shadow, i):
    argv = [binary, "serve", "--no-watch", "--config", config_path, "--listen", f"127.0.0.1:{PORT}"]
    with Server(argv, f"http://127.0.0.1:{PORT}/healthz", cpus=CPUS):
        # A short warm-up, so that both runs start with warm instances.
        latency(f"shadow-warm-{shadow}-{i}-{time.monotonic_ns()}")
        result = latency(f"shadow-{shadow}-{i}-{time.monotonic_ns()}")
        if shadow:
            # The last shadow calls finish after the load tool's last answer.
            deadline = time.time() + 10
            report = shadow_report()
            while time.time() < deadline:
                time.sleep(0.2)
                again = shadow_report()
                if again == report:
                    break
                report = again
            result.update(report)
    return result


def med(values):
    return statistics.median(values)


def summarize(runs):
    s = {q: med([r[q] for r in runs]) for q in ("p50", "p99", "max")}
    s["failed"] = sum(r["failed"] for r in runs)
    for key in ("compared", "dropped", "acked"):
        if all(key in r for r in runs):
            s[key] = sum(r[key] for r in runs)
    return s


def markdown(results):
    """The BENCHMARKS.md section for `results` (this script's JSON)."""
    off, on = results["off"], results["on"]
    ratio = results["p99_ratio"]

    def ratio_text(r):
        return "-" if math.isnan(r["median"]) else f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})"
    dropped = on.get("dropped", 0)
    compared = on.get("compared", 0)
    return f"""## Shadow versions: the cost on the live path (`bench/shadow.py`)

One route to the enricher; the same router configuration without and with a
`shadow` on the plugin (the same component with another `config`, so every
event is compared and differs), in {results['pairs']} alternating pairs. Open loop
at {results['rate']} req/s for {results['seconds']:.0f} s per run (latency from the
scheduled send time), the router on core {results['cpus']}, the load tool on core 1.
Medians over the runs.

| shadow | p50 | p99 | max | failed | shadow calls compared / dropped | p99 with / without |
| --- | --- | --- | --- | --- | --- | --- |
| none | {off['p50']:.0f} us | {off['p99']:.0f} us | {off['max']:.0f} us | {off['failed']} | | |
| enricher, `config` changed | {on['p50']:.0f} us | {on['p99']:.0f} us | {on['max']:.0f} us | {on['failed']} | {compared} / {dropped} | {ratio_text(ratio)} |
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--markdown", metavar="JSON", help="print the BENCHMARKS.md section of a result and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.load(open(args.markdown))), end="")
        return
    binary = os.environ.get("SHADOW_ROUTER", os.path.join(BIN, "router"))
    runs = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {shadow: config(tmp, shadow) for shadow in (False, True)}
        for i in range(PAIRS):
            for shadow in (False, True):
                runs[shadow].append(measure(binary, paths[shadow], shadow, i))
            off, on = runs[False][-1], runs[True][-1]
            print(f"pair {i}: p99 {off['p99']} us without, {on['p99']} us with a shadow "
                  f"({on.get('compared', 0)} compared, {on.get('dropped', 0)} dropped)", file=sys.stderr)
    ratios = [on["p99"] / max(off["p99"], 1) for off, on in zip(runs[False], runs[True])]
    results = {"rate": int(RATE), "seconds": float(SECONDS), "pairs": PAIRS, "cpus": CPUS,
               "off": summarize(runs[False]), "on": summarize(runs[True]),
               "p99_ratio": {"median": med(ratios), "min": min(ratios), "max": max(ratios)}}
    json.dump(results, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
