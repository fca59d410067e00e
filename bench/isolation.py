#!/usr/bin/env python3
"""A busy plugin against its neighbours (called by bench/run.sh; JSON on stdout).

Guests of one plugin (`spinner`, the hostile test plugin's endless loop, time
limit SPIN_TIMEOUT, no breaker) are kept spinning, 2 x the router's cores of them,
each sent again as soon as its time limit answers it. Meanwhile the load tool
sends an open loop of events (latency measured from the scheduled send time) to
one of two other routes:

- `neighbour`: another plugin (`quiet`, the same component, which emits nothing
  for the load tool's data);
- `forward`: a route without a handler, forwarding to a bare axum server.

Before the open loop, the CPU time of the router's I/O threads (all but the
guest threads and the epoch ticker) is read over a few seconds in which only the
spinning guests reach the router: the I/O workers' share of the busy guests.

Each figure is taken with 0 and with 2 x cores spinning guests, on the router
pinned to core 0 (one core: 2 guests) and on both cores (4 guests). With
`--old PATH` (or ISOLATION_OLD_ROUTER), a second router binary is measured in
alternating pairs with the current one (old, new, old, new, ...), and the
per-request CPU of the trivial handler route is compared in the same pairs.
"""

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BIN, PLUGINS, Server, cpu_seconds, loadgen  # noqa: E402

PAIRS = int(os.environ.get("ISOLATION_PAIRS", "3"))
SECONDS = os.environ.get("ISOLATION_SECONDS", "6")
RATE = os.environ.get("ISOLATION_RATE", "500")
SPIN_TIMEOUT = "500ms"
PORT, SINK_PORT = 18180, 18191
# (router cpus, its cores); ISOLATION_SETUPS=0 measures the first alone.
SETUPS = tuple(x for x in (("0", 1), ("0,1", 2))
               if x[0] in os.environ.get("ISOLATION_SETUPS", "0 0,1").split())


def config(directory):
    path = os.path.join(directory, "isolation.toml")
    hostile = os.path.join(PLUGINS, "hostile.wasm")
    with open(path, "w") as f:
        f.write(f"""[ingest]
max_in_flight = 100000
[[plugin]]
name = "spinner"
path = "{hostile}"
timeout = "{SPIN_TIMEOUT}"
instances = 16
breaker_threshold = 0
[[plugin]]
name = "quiet"
path = "{hostile}"
instances = 16
[[plugin]]
name = "trivial"
path = "{PLUGINS}/fail.wasm"
instances = 8
[[route]]
name = "spin"
filter = {{ exact = {{ type = "spin" }} }}
handler = "spinner"
[[route]]
name = "neighbour"
filter = {{ exact = {{ type = "t" }} }}
handler = "quiet"
[[route]]
name = "forward"
filter = {{ exact = {{ type = "fwd" }} }}
forward = "http://127.0.0.1:{SINK_PORT}/events"
[[route]]
name = "trivial"
filter = {{ exact = {{ type = "bench.event" }} }}
handler = "trivial"
""")
    return path


def read_response(conn):
    """The status and body of one HTTP/1.1 answer with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the router closed the connection")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines[1:]
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("the router closed the connection")
        body += chunk
    return int(lines[0].split()[1]), body


class Spinners:
    """`n` clients, each keeping one spinning guest in the router at all times."""

    def __init__(self, n):
        self.stop = threading.Event()
        self.answered = 0
        self.unexpected = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.spin, args=(i,), daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def spin(self, i):
        # Raw bytes on a socket: http.client spent about 0.5 ms of the load
        # tool's core per answer, which delayed the load tool and the router.
        conn = socket.create_connection(("127.0.0.1", PORT), timeout=30)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        n = 0
        while not self.stop.is_set():
            n += 1
            conn.sendall(f"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nce-specversion: 1.0\r\n"
                         f"ce-id: spin-{i}-{n}\r\nce-source: /bench\r\nce-type: spin\r\n"
                         f"Content-Length: 4\r\n\r\nloop".encode())
            status, body = read_response(conn)
            with self.lock:
                self.answered += 1
                if status != 502 and len(self.unexpected) < 3:
                    self.unexpected.append(f"{status}: {body[:200]!r}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()


# A router that stalls drains the open loop's backlog at a few requests a
# second: past this, the run counts as stalled (latencies infinite).
STALLED_AFTER = float(SECONDS) + 20


def latency(ty, port=PORT):
    # The timer pacer: with the router on both cores, a spinning load tool
    # would take the core it shares with the router (see bench/loadgen).
    argv = ["taskset", "-c", "1", os.path.join(BIN, "loadgen"), "--addr", f"127.0.0.1:{port}", "--mode", "rate",
            "--pacer", "timer", "--rate", RATE, "--connections", "8", "--duration", SECONDS, "--type", ty,
            "--run", f"iso-{ty}-{time.monotonic_ns()}"]
    try:
        out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=STALLED_AFTER)
    except subprocess.TimeoutExpired:
        return {"p50": math.inf, "p99": math.inf, "max": math.inf, "failed": 0, "stalled": True}
    r = json.loads(out.stdout)
    return {"p50": r["latency_us"]["p50"], "p99": r["latency_us"]["p99"], "max": r["latency_us"]["max"],
            "failed": r["failed"]}


IO_WINDOW = 5


def io_threads_cpu(pid):
    """CPU nanoseconds so far of each of the router's threads other than the
    guest threads and the epoch ticker: the tokio workers that drive HTTP."""
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            if open(f"/proc/{pid}/task/{tid}/comm").read().startswith("wasm-"):
                continue
            times[tid] = int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return times


def io_busy(server):
    """Milliseconds per second the I/O threads ran while nothing but the busy
    guests (if any) reached the router: what starting long calls costs them.
    Per thread, so that one ending meanwhile (a blocking-pool thread) does not
    take its earlier time out of the sum."""
    before = io_threads_cpu(server.proc.pid)
    time.sleep(IO_WINDOW)
    after = io_threads_cpu(server.proc.pid)
    ran = sum(ns - before.get(tid, 0) for tid, ns in after.items())
    return ran / 1e6 / IO_WINDOW


def trivial_cpu(server):
    """Closed loop through the trivial handler: server CPU per request."""
    before = cpu_seconds(server.proc.pid)
    r = loadgen(f"127.0.0.1:{PORT}", "--mode", "max", "--connections", "32", "--duration", SECONDS,
                "--run", f"iso-trivial-{time.monotonic_ns()}")
    return {"cpu_us": (cpu_seconds(server.proc.pid) - before) * 1e6 / max(r["acked_events"], 1),
            "rps": r["requests_per_s"], "failed": r["failed"]}


def measure(binary, config_path, cpus, cores, with_cpu):
    argv = [binary, "serve", "--no-watch", "--config", config_path, "--listen", f"127.0.0.1:{PORT}"]
    out = {}
    with Server(argv, f"http://127.0.0.1:{PORT}/healthz", cpus=cpus) as server:
        for spinning in (0, 2 * cores):
            with Spinners(spinning) as spinners:
                if spinning:
                    # Until every spinner's first call has been answered: from
                    # then on they spin back to back.
                    deadline = time.time() + 30
                    while spinners.answered < spinning and time.time() < deadline:
                        time.sleep(0.05)
                started, answered = time.time(), spinners.answered
                out[spinning] = {"io_ms_per_s": io_busy(server)}
                out[spinning].update({"neighbour": latency("t"), "forward": latency("fwd")})
                out[spinning]["spins_per_s"] = (spinners.answered - answered) / (time.time() - started)
                out[spinning]["unexpected"] = list(spinners.unexpected)
        if with_cpu:
            out["trivial"] = trivial_cpu(server)
    return out


FLOOR_PORT, FORWARD_FLOOR_PORT = 18182, 18183

# A thread that never blocks, as a busy guest thread is: at the guest threads'
# policy (SCHED_IDLE, router/src/plugin/offload.rs), and at nice +10, their
# fallback where SCHED_IDLE is refused.
BUSY_LOOPS = {"nice10": ["nice", "-n", "10", "python3", "-c", "while True: pass"],
              "idle": ["chrt", "-i", "0", "python3", "-c", "while True: pass"]}


def measure_floor(cpus, cores):
    """The kernel's (and the host's) share of the latencies: bare axum on the
    router's cores, beside as many busy loops as the router has guest threads
    (one per core, all busy when 2 x cores guests spin), nothing else; for the
    forward route, bare axum posting each body on to the same sink. No design
    that runs guests on the same cores can do better than this."""
    baseline = os.path.join(BIN, "baseline-server")
    out = floor_latencies([baseline, "--listen", f"127.0.0.1:{FLOOR_PORT}"], FLOOR_PORT, cpus, cores,
                          BUSY_LOOPS)
    forward = floor_latencies([baseline, "--listen", f"127.0.0.1:{FORWARD_FLOOR_PORT}",
                               "--forward", f"http://127.0.0.1:{SINK_PORT}/events"],
                              FORWARD_FLOOR_PORT, cpus, cores, ("idle",))
    out.update({f"forward_{name}": r for name, r in forward.items()})
    return out


def floor_latencies(argv, port, cpus, cores, loops):
    """The open loop's latency to the server of `argv` alone ("none") and beside
    `cores` busy loops of each kind in `loops`."""
    out = {}
    with Server(argv, f"http://127.0.0.1:{port}/events", cpus=cpus):
        for name in ("none", *loops):
            busy = [subprocess.Popen(["taskset", "-c", cpus, *BUSY_LOOPS[name]]) for _ in range(cores)] \
                if name != "none" else []
            try:
                out[name] = latency("t", port)
            finally:
                for p in busy:
                    p.kill()
                    p.wait()
    return out


def med(values):
    return statistics.median(values)


def summarize(runs, cores):
    """Medians over the runs of one binary on one setup."""
    busy = 2 * cores
    s = {"busy_guests": busy}
    for route in ("neighbour", "forward"):
        for spinning in (0, busy):
            for q in ("p50", "p99", "max"):
                s[f"{route}_{spinning}_{q}"] = med([r[spinning][route][q] for r in runs])
        s[f"{route}_p99_ratio"] = med([r[busy][route]["p99"] / max(r[0][route]["p99"], 1) for r in runs])
        s[f"{route}_stalled_runs"] = sum(bool(r[busy][route].get("stalled")) for r in runs)
    s["spins_per_s"] = med([r[busy]["spins_per_s"] for r in runs])
    for spinning in (0, busy):
        s[f"io_ms_per_s_{spinning}"] = med([r[spinning]["io_ms_per_s"] for r in runs])
    s["failed"] = sum(r[sp][route]["failed"] for r in runs for sp in (0, busy) for route in ("neighbour", "forward"))
    s["unexpected"] = [u for r in runs for u in r[busy]["unexpected"]][:3]
    floors = [r["floor"] for r in runs if "floor" in r]
    if floors:
        # Each floor against the same server without busy loops.
        for name, base in (("none", "none"), *((n, "none") for n in BUSY_LOOPS),
                           ("forward_none", "forward_none"), ("forward_idle", "forward_none")):
            if not all(name in f for f in floors):
                continue
            for q in ("p50", "p99", "max"):
                s[f"floor_{name}_{q}"] = med([f[name][q] for f in floors])
            s[f"floor_{name}_p99_ratio"] = med([f[name]["p99"] / max(f[base]["p99"], 1) for f in floors])
    if all("trivial" in r for r in runs):
        s["trivial_cpu_us"] = med([r["trivial"]["cpu_us"] for r in runs])
        s["trivial_rps"] = med([r["trivial"]["rps"] for r in runs])
    return s


def us(v):
    return "stalled" if math.isinf(v) else f"{v:.0f}"


def ratio(v):
    return "-" if math.isnan(v) or math.isinf(v) else f"{v:.2f}"


def markdown(results):
    """The BENCHMARKS.md section for `results` (this script's JSON)."""
    rows = []
    names = {"0": "core 0", "0,1": "both cores"}
    for cpus, setup in results["setups"].items():
        for name in ("new", "old"):
            s = setup.get(name)
            if s is None:
                continue
            busy = s["busy_guests"]
            build = "" if name == "new" else f" ({results.get('old_label', 'the other build')})"
            for route, label in (("neighbour", "neighbour plugin"), ("forward", "route without a handler (forward)")):
                if math.isinf(s[f"{route}_{busy}_p99"]):
                    loaded = (f"stalled in {s[f'{route}_stalled_runs']} of {results['pairs']} runs: the open "
                              f"loop's backlog not drained {STALLED_AFTER:.0f} s after it began")
                else:
                    loaded = (f"{us(s[f'{route}_{busy}_p50'])} / {us(s[f'{route}_{busy}_p99'])} us "
                              f"(max {us(s[f'{route}_{busy}_max'])})")
                rows.append(
                    f"| {names.get(cpus, cpus)}{build} | {busy} | {label} "
                    f"| {us(s[f'{route}_0_p50'])} / {us(s[f'{route}_0_p99'])} us "
                    f"| {loaded} "
                    f"| {ratio(s[f'{route}_p99_ratio'])} | {'<= 2, p99 < 5 ms' if name == 'new' else ''} |")
            rows.append(
                f"| {names.get(cpus, cpus)}{build} | {busy} | CPU of the I/O threads (HTTP workers), "
                f"ms per second, nothing else sent | {s['io_ms_per_s_0']:.2f} "
                f"| {s[f'io_ms_per_s_{busy}']:.2f} | | |")
        s = setup["new"]
        for name, base, label in (("idle", "none", "bare axum beside {} SCHED_IDLE"),
                                  ("nice10", "none", "bare axum beside {} nice +10"),
                                  ("forward_idle", "forward_none",
                                   "bare axum forwarding to the sink, beside {} SCHED_IDLE")):
            if f"floor_{name}_p99_ratio" not in s:
                continue
            rows.append(
                f"| {names.get(cpus, cpus)} | floor | {label.format(s['busy_guests'] // 2)} busy "
                f"loop(s), one per guest thread | {us(s[f'floor_{base}_p50'])} / {us(s[f'floor_{base}_p99'])} us "
                f"| {us(s[f'floor_{name}_p50'])} / {us(s[f'floor_{name}_p99'])} us "
                f"(max {us(s[f'floor_{name}_max'])}) | {ratio(s[f'floor_{name}_p99_ratio'])} | the machine's part |")
        if "trivial_cpu_ratio" in setup:
            r = setup["trivial_cpu_ratio"]
            rows.append(
                f"| {names.get(cpus, cpus)}: server CPU per request, trivial handler, closed loop, 32 connections "
                f"| | this build / {results.get('old_label', 'the other build')} "
                f"| {setup['new']['trivial_cpu_us']:.1f} / {setup['old']['trivial_cpu_us']:.1f} us "
                f"| | {r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f}) | no regression |")
    spins = ", ".join(f"{names.get(c, c)} {st['new']['spins_per_s']:.1f}/s" for c, st in results["setups"].items())
    return f"""## Isolation: a busy plugin and its neighbours (`bench/isolation.py`)

Guests of one plugin spin until their time limit ({results['spin_timeout']}), 2 x the
router's cores of them, each sent again when answered (spinning calls answered: {spins}).
Meanwhile an open loop at {results['rate']} req/s ({results['seconds']:.0f} s, latency
from the scheduled send time) goes to a neighbour plugin (emits nothing) or to a
route without a handler (forward to bare axum). Before the open loop, the CPU
time of the router's I/O threads is read over {IO_WINDOW} s with nothing but the
spinning guests sent: what finding out that calls are long costs them. Median
over {results['pairs']} runs; the load tool on core 1, sleeping between send times (`--pacer
timer`: a spinning one would take the core it shares with the router on both cores), and
the spinning clients there too. The floor rows are the machine's part,
measured in every pair: the same open loop to bare axum on the router's cores
(for the forward route, bare axum posting each body on to the same sink) beside
one busy loop per guest thread (what a busy guest thread is to the
scheduler: at SCHED_IDLE as the guest threads are, and at nice +10, their fallback), nothing else. Design and the options measured: docs/isolation.md.

| router on | busy guests | route | p50 / p99, no busy guest | p50 / p99, busy guests | p99 busy / idle | target |
| --- | --- | --- | --- | --- | --- | --- |
""" + "\n".join(rows) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--markdown", metavar="JSON", help="print the BENCHMARKS.md section of a result and exit")
    parser.add_argument("--old", default=os.environ.get("ISOLATION_OLD_ROUTER"),
                        help="another router binary to compare with, in alternating pairs")
    parser.add_argument("--old-label", default=os.environ.get("ISOLATION_OLD_LABEL", "the other build"),
                        help="what the other binary is, for the table")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.load(open(args.markdown))), end="")
        return
    # The spinning clients on the load tool's core, not on the router's.
    os.sched_setaffinity(0, {1})
    new = os.environ.get("ISOLATION_ROUTER", os.path.join(BIN, "router"))
    binaries = [("old", args.old), ("new", new)] if args.old else [("new", new)]
    results = {"old_label": args.old_label, "rate": int(RATE), "seconds": float(SECONDS), "spin_timeout": SPIN_TIMEOUT, "pairs": PAIRS,
               "setups": {}}
    with tempfile.TemporaryDirectory() as tmp, \
            Server([os.path.join(BIN, "baseline-server"), "--listen", f"127.0.0.1:{SINK_PORT}"],
                   f"http://127.0.0.1:{SINK_PORT}/events", cpus="1"):
        path = config(tmp)
        for cpus, cores in SETUPS:
            runs = {name: [] for name, _ in binaries}
            cpu_ratios = []
            for i in range(PAIRS):
                for name, binary in binaries:
                    # The CPU comparison is only needed once, on the single core.
                    with_cpu = bool(args.old) and cores == 1
                    runs[name].append(measure(binary, path, cpus, cores, with_cpu))
                    r = runs[name][-1]
                    print(f"cpus {cpus} pair {i} {name}: I/O threads {r[0]['io_ms_per_s']:.2f} -> "
                          f"{r[2 * cores]['io_ms_per_s']:.2f} ms/s, neighbour p99 {r[0]['neighbour']['p99']} -> "
                          f"{r[2 * cores]['neighbour']['p99']} us, forward p99 {r[0]['forward']['p99']} -> "
                          f"{r[2 * cores]['forward']['p99']} us"
                          + (f", trivial {r['trivial']['cpu_us']:.1f} us CPU" if "trivial" in r else ""),
                          file=sys.stderr)
                # The floor in every pair, beside the runs it explains.
                floor = measure_floor(cpus, cores)
                runs["new"][-1]["floor"] = floor
                print(f"cpus {cpus} pair {i} floor: p99 {floor['none']['p99']} -> nice +10 "
                      f"{floor['nice10']['p99']}, SCHED_IDLE {floor['idle']['p99']} us; forwarding "
                      f"{floor['forward_none']['p99']} -> SCHED_IDLE {floor['forward_idle']['p99']} us",
                      file=sys.stderr)
                if args.old and cores == 1:
                    cpu_ratios.append(runs["new"][-1]["trivial"]["cpu_us"] / runs["old"][-1]["trivial"]["cpu_us"])
            setup = {name: summarize(rs, cores) for name, rs in runs.items()}
            if cpu_ratios:
                setup["trivial_cpu_ratio"] = {"median": med(cpu_ratios), "min": min(cpu_ratios),
                                              "max": max(cpu_ratios)}
            results["setups"][cpus] = setup
    json.dump(results, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
