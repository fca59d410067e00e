#!/usr/bin/env python3
"""Durable mode on one Redis against a 3-master Redis Cluster, measured in one run.

Starts its own servers on free ports (no persistence on any of them, so that the
comparison is about the cluster, not the disk): one redis-server; a cluster of
three masters; the same three masters with a replica each. For several rounds, in
turn: the router on the single Redis, on the cluster (`shards = 3`), and on the
cluster with replicas and `replicas = 1` (every append waits for `WAIT 1`), each
driven by the load generator for 5 s (one event per request, 64 connections),
then drained. Reports, as medians with min and max: accepted and consumed
events/s, the router's and the Redis servers' CPU time per accepted event (the
per-event costs from which the closing figures for N masters and M routers are
worked out), and the ratios against the single Redis of the same round.
The router routes every event to the enricher plugin, as bench/redis.py does.
Run after `cargo build --release -p loadgen -p router` (bench/run.sh does it).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis import free_port, redis_cli  # noqa: E402
from run import BIN, PLUGINS, Server, cpu_seconds, loadgen  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_PAIRS", "3"))
INGEST, ADMIN = 18084, 18085


def start_node(port, directory, cluster):
    args = ["taskset", "-c", "0", "redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", directory]
    if cluster:
        # The bus port is chosen too: the default (port + 10000) may be taken,
        # or past 65535.
        args += ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                 "--cluster-port", str(free_port())]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server on {port} exited with {proc.returncode}")
        try:
            if redis_cli(port, "PING") == "PONG":
                return proc
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.05)


def start_cluster(tmp, masters, replicas):
    ports = [free_port() for _ in range(masters * (1 + replicas))]
    procs = []
    for port in ports:
        directory = os.path.join(tmp, str(port))
        os.makedirs(directory)
        procs.append(start_node(port, directory, cluster=True))
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                    "--cluster-replicas", str(replicas), "--cluster-yes"],
                   check=True, capture_output=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        infos = [redis_cli(p, "CLUSTER", "INFO") for p in ports]
        links = [redis_cli(p, "INFO", "replication") for p in ports]
        if all("cluster_state:ok" in i for i in infos) and \
                all("role:master" in r or "master_link_status:up" in r for r in links):
            return ports, procs
        time.sleep(0.1)
    raise RuntimeError("the cluster never became healthy")


def config(tmp, name, url, extra):
    path = os.path.join(tmp, f"{name}.toml")
    with open(path, "w") as f:
        f.write(f"""[server]
batch_limit = 1000
[ingest]
max_in_flight = 100000
[queue]
kind = "redis"
url = "{url}"
stream = "bench:events"
concurrency = 32
{extra}
[[plugin]]
name = "enricher"
path = "{PLUGINS}/enricher.wasm"
instances = 8
[[route]]
name = "bench"
filter = {{ exact = {{ type = "bench.event" }} }}
handler = "enricher"
""")
    return path


def drained(timeout=120):
    """Seconds until the router's /admin/queue shows nothing behind nor pending."""
    start = time.time()
    while time.time() - start < timeout:
        with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/admin/queue") as answer:
            status = json.load(answer)
        streams = status["shards"] + status["partitions"]
        if all(s["lag"] == 0 and s["pending"] == 0 for s in streams):
            return time.time() - start
        time.sleep(0.05)
    raise RuntimeError("the queue never drained")


def run(path, redis_pids):
    argv = [os.path.join(BIN, "router"), "serve", "--admin-listen", f"127.0.0.1:{ADMIN}", "--no-watch",
            "--config", path, "--listen", f"127.0.0.1:{INGEST}"]
    with Server(argv, f"http://127.0.0.1:{INGEST}/readyz", cpus="0,1") as router:
        router_before = cpu_seconds(router.proc.pid)
        redis_before = sum(cpu_seconds(p) for p in redis_pids)
        r = loadgen(f"127.0.0.1:{INGEST}", "--mode", "max", "--connections", "64", "--duration", "5",
                    "--run", os.path.basename(path))
        seconds = drained()
        events = max(r["acked_events"], 1)
        return {
            "accepted_per_s": r["events_per_s"],
            "consumed_per_s": r["acked_events"] / (5 + seconds),
            "router_cpu_us": (cpu_seconds(router.proc.pid) - router_before) * 1e6 / events,
            "redis_cpu_us": (sum(cpu_seconds(p) for p in redis_pids) - redis_before) * 1e6 / events,
            "failed": r["failed"],
        }


def main():
    rows = {"single": [], "cluster": [], "cluster_replicas": []}
    with tempfile.TemporaryDirectory() as tmp:
        single_port = free_port()
        os.makedirs(os.path.join(tmp, "single"))
        single = start_node(single_port, os.path.join(tmp, "single"), cluster=False)
        plain_ports, plain = start_cluster(os.path.join(tmp, "c3"), 3, 0)
        replicated_ports, replicated = start_cluster(os.path.join(tmp, "c3r"), 3, 1)
        setups = {
            "single": (config(tmp, "single", f"redis://127.0.0.1:{single_port}/", "shards = 1"), [single]),
            "cluster": (config(tmp, "cluster", "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in plain_ports),
                               "shards = 3"), plain),
            "cluster_replicas": (config(tmp, "cluster-replicas", "redis+cluster://" + ",".join(
                f"127.0.0.1:{p}" for p in replicated_ports), "shards = 3\nreplicas = 1"), replicated),
        }
        try:
            for i in range(ROUNDS):
                for name, (path, procs) in setups.items():
                    rows[name].append(run(path, [p.pid for p in procs]))
                print(f"round {i}: " + ", ".join(
                    f"{name} {rows[name][-1]['accepted_per_s']:.0f}/s" for name in rows), file=sys.stderr)
        finally:
            for proc in [single, *plain, *replicated]:
                proc.terminate()
                proc.wait()
    results = {}
    for name, runs in rows.items():
        results[name] = {key: statistics.median(r[key] for r in runs)
                         for key in ("accepted_per_s", "consumed_per_s", "router_cpu_us", "redis_cpu_us")}
        results[name]["failed"] = sum(r["failed"] for r in runs)
        if name != "single":
            ratios = [r["accepted_per_s"] / s["accepted_per_s"] for r, s in zip(runs, rows["single"])]
            results[name]["ratio"] = statistics.median(ratios)
            results[name]["ratio_min"] = min(ratios)
            results[name]["ratio_max"] = max(ratios)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
