#!/usr/bin/env python3
"""Memory soak: `router serve` (the enricher route of the end-to-end benchmark)
under a steady open-loop load for SOAK_SECONDS (600 by default), its RSS sampled
every SOAK_EVERY seconds. Prints JSON: the curve, its start (after the first
sample's warm-up) and end, and end / start, which must stay near 1 (no growth).
Run after `cargo build --release -p loadgen -p router` (bench/run.sh does it).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BIN, Server, router_config, rss_mib  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
EVERY = int(os.environ.get("SOAK_EVERY", "10"))
RATE = int(os.environ.get("SOAK_RATE", "5000"))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        config = router_config(tmp)
        with Server([os.path.join(BIN, "router"), "serve", "--admin-listen", "127.0.0.1:0", "--no-watch", "--config", config,
                     "--listen", "127.0.0.1:18085"], "http://127.0.0.1:18085/healthz") as server:
            # The load tool's report goes to a file: its list of slow windows
            # over ten minutes can outgrow a pipe's buffer, and a pipe read only
            # after the tool exits would then hold both (it did, 2026-12-04).
            with open(os.path.join(tmp, "loadgen.json"), "w+") as report:
                load = subprocess.Popen(
                    ["taskset", "-c", "1", os.path.join(BIN, "loadgen"), "--addr", "127.0.0.1:18085", "--mode", "rate",
                     "--rate", str(RATE), "--connections", "16", "--duration", str(SECONDS), "--run", "soak"],
                    stdout=report, stderr=subprocess.DEVNULL, text=True)
                curve = []
                started = time.time()
                while load.poll() is None:
                    curve.append((round(time.time() - started), round(rss_mib(server.proc.pid), 1)))
                    time.sleep(EVERY)
                report.seek(0)
                result = json.load(report)
    # The first sample is taken before the load warms the instances and buffers up.
    start = curve[1][1] if len(curve) > 1 else curve[0][1]
    end = curve[-1][1]
    print(json.dumps({
        "seconds": SECONDS, "rate": RATE, "requests": result["acked_events"], "failed": result["failed"],
        "rss_start_mib": start, "rss_end_mib": end, "rss_max_mib": max(r for _, r in curve),
        "growth": end / start, "curve": curve,
    }, indent=1))


if __name__ == "__main__":
    main()
