#!/usr/bin/env python3
"""Durable mode against `redis-benchmark` XADD, measured in the same run.

Starts its own redis-server (AOF, fsync every second) on a free port, then for
several pairs: redis-benchmark XADD (unpipelined, and pipelined 16 deep), and the
router in durable mode driven by the load generator (one event per request, and
batches of 100, which the router appends with one script, all or none). One event per request is also
measured on an ingest-only router (`consume = false`): the same ingest path
without the same process routing the stream on the same two cores. Each pair's router figure is
divided by its own XADD figure; the medians (with min and max) are printed as JSON.
The router routes every event to the enricher plugin; after each run the script
waits until the stream is drained and reports the consumed events/s as well.
Run after `cargo build --release -p loadgen -p router` (bench/run.sh does it).
"""

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BIN, PLUGINS, Server, loadgen  # noqa: E402

PAIRS = int(os.environ.get("BENCH_PAIRS", "3"))
# Where the router runs. redis-server has core 0 and the load generator core 1, as
# redis-server and redis-benchmark have in the baseline; the router may use both
# cores (the machine's two), sharing them with those two. `0` confines it to
# redis-server's core instead (the layout of earlier runs: about 0.24x single).
ROUTER_CPUS = os.environ.get("DURABLE_ROUTER_CPUS", "0,1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def xadd_rate(port, pipeline):
    payload = "x" * 256
    out = subprocess.run(
        ["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-n", "200000", "-c", "64",
         "-P", str(pipeline), "-q", "XADD", "bench:xadd", "MAXLEN", "~", "100000", "*", "event", payload],
        check=True, capture_output=True, text=True)
    rates = re.findall(r"([0-9.]+) requests per second", out.stdout)
    redis_cli(port, "DEL", "bench:xadd")
    return float(rates[-1])


def drained(port, stream, timeout=120):
    """Seconds until every entry of `stream` is acknowledged."""
    start = time.time()
    while time.time() - start < timeout:
        summary = redis_cli(port, "XPENDING", stream, "router").splitlines()
        length = int(redis_cli(port, "XLEN", stream) or 0)
        info = redis_cli(port, "XINFO", "GROUPS", stream).splitlines()
        lag = info[info.index("lag") + 1] if "lag" in info else "0"
        if summary and summary[0] == "0" and lag in ("0", ""):
            return time.time() - start, length
        time.sleep(0.05)
    raise RuntimeError("the stream never drained")


def main():
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        redis = subprocess.Popen(
            ["taskset", "-c", "0", "redis-server", "--port", str(port), "--save", "", "--appendonly", "yes",
             "--appendfsync", "everysec", "--dir", tmp], stdout=subprocess.DEVNULL)
        try:
            while True:
                try:
                    if redis_cli(port, "PING") == "PONG":
                        break
                except subprocess.CalledProcessError:
                    pass
                time.sleep(0.05)
            config = os.path.join(tmp, "durable.toml")
            ingest_only = os.path.join(tmp, "ingest-only.toml")
            for path, consume in ((config, "true"), (ingest_only, "false")):
                with open(path, "w") as f:
                    f.write(f"""[server]
batch_limit = 1000
[ingest]
max_in_flight = 100000
[queue]
kind = "redis"
url = "redis://127.0.0.1:{port}/"
stream = "bench:events"
concurrency = 32
consume = {consume}
[[plugin]]
name = "enricher"
path = "{PLUGINS}/enricher.wasm"
instances = 8
[[route]]
name = "bench"
filter = {{ exact = {{ type = "bench.event" }} }}
handler = "enricher"
""")
            router = lambda path=config: Server([os.path.join(BIN, "router"), "serve", "--admin-listen", "127.0.0.1:0", "--no-watch", "--config",
                                                 path, "--listen", "127.0.0.1:18082"],
                                                "http://127.0.0.1:18082/healthz", cpus=ROUTER_CPUS)
            single, batch, ingest = [], [], []
            for i in range(PAIRS):
                plain = xadd_rate(port, 1)
                with router():
                    r = loadgen("127.0.0.1:18082", "--mode", "max", "--connections", "64", "--duration", "5",
                                "--run", f"d{i}")
                    seconds, _ = drained(port, "bench:events")
                consumed = r["acked_events"] / (5 + seconds)
                single.append((plain, r["events_per_s"], consumed, r["failed"]))
                piped = xadd_rate(port, 16)
                with router():
                    r = loadgen("127.0.0.1:18082", "--mode", "max", "--connections", "16", "--duration", "5",
                                "--batch", "100", "--run", f"db{i}")
                    seconds, _ = drained(port, "bench:events")
                consumed = r["acked_events"] / (5 + seconds)
                batch.append((piped, r["events_per_s"], consumed, r["failed"]))
                with router(ingest_only):
                    r = loadgen("127.0.0.1:18082", "--mode", "max", "--connections", "64", "--duration", "5",
                                "--run", f"di{i}")
                # Nothing consumed it: dropped, so every run starts on an empty stream.
                redis_cli(port, "DEL", "bench:events")
                ingest.append((plain, r["events_per_s"], 0, r["failed"]))
                print(f"pair {i}: XADD {plain:.0f}/s, single {single[-1][1]:.0f}/s; "
                      f"XADD -P16 {piped:.0f}/s, batch {batch[-1][1]:.0f}/s; "
                      f"ingest-only single {ingest[-1][1]:.0f}/s", file=sys.stderr)

            def summary(rows):
                ratios = [accepted / xadd for xadd, accepted, _, _ in rows]
                return {
                    "xadd_per_s": statistics.median(r[0] for r in rows),
                    "accepted_per_s": statistics.median(r[1] for r in rows),
                    "consumed_per_s": statistics.median(r[2] for r in rows),
                    "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                    "failed": sum(r[3] for r in rows),
                }

            results["single"] = summary(single)
            results["batch"] = summary(batch)
            results["ingest_only"] = summary(ingest)
        finally:
            redis.terminate()
            redis.wait()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
