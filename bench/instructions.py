#!/usr/bin/env python3
"""Instructions per request of bare axum, the floor and the router, counted by
callgrind (called by bench/run.sh; JSON on stdout).

CPU time on these shared virtual machines moves by 15 % from one round to the
next, and a change of a few percent to the router's own work is lost in it.
An instruction count is not: it is the same for the same binary and the same
requests whatever the host is doing. It counts user space only (the kernel's
share of a request, its writes and the client's wake-ups, is not in it), so it
answers what the router's own code costs over the floor's, not the CPU ratios
of section 2, which bench/run.py measures.

Each server runs alone under `valgrind --tool=callgrind`, pinned to core 0,
the load tool (not under valgrind) on core 1. After a warm-up load, the
counters are zeroed, the load tool sends one binary-mode event per request
for INSTR_SECONDS, and the counters are dumped: instructions (all threads) over
the requests answered. Under valgrind wasmtime cannot reserve its pooling
allocator's address space, so every server runs with
`ROUTER_INSTANCE_ALLOCATOR=on-demand` (the floor and the router alike; a call
on a reused instance allocates nothing either way).

Callgrind also simulates the caches (`--cache-sim=yes`), with one geometry on
every host (CACHES: the first-level caches of the Sapphire Rapids hosts these
benchmarks run on, and their per-core L2 as the "last level"): the cache lines
of data and of code a request misses in the first level, and in the L2. An
instruction count says how much work a server does; the misses say why the same
count can take longer: a miss in the first level that the L2 serves costs some
15 cycles, more than most instructions, and no count of instructions shows it.
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BIN, PLUGINS, loadgen, router_config, wait_ready  # noqa: E402

SECONDS = os.environ.get("INSTR_SECONDS", "5")
PORT = 18520
# A server under callgrind runs some fifty times slower: 16 connections keep
# it busy without piling up requests that time out.
CONNECTIONS = "16"
# size,associativity,line size: 48 KiB of data, 32 KiB of code, 2 MiB of L2.
CACHES = ["--I1=32768,8,64", "--D1=49152,12,64", "--LL=2097152,16,64"]
# The events callgrind counts with the cache simulation on, in its order.
EVENTS = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]


def counted(argv, ready_path, out):
    """Instructions and requests of the server `argv` under callgrind."""
    prefix = os.path.join(out, "callgrind.out")
    env = dict(os.environ, RUST_LOG="warn", ROUTER_INSTANCE_ALLOCATOR="on-demand")
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p", "--dump-instr=no",
                "--cache-sim=yes", *CACHES]
    with open(os.path.join(out, "valgrind.log"), "w") as log:
        proc = subprocess.Popen(["taskset", "-c", "0", *valgrind, *argv], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
    addr = f"127.0.0.1:{PORT}"
    try:
        # Compiling a component under valgrind takes a minute or more.
        wait_ready(f"http://{addr}{ready_path}", timeout=900)
        run = lambda seconds: loadgen(addr, "--mode", "max", "--connections", CONNECTIONS,
                                      "--duration", seconds, "--run", "instructions")
        # The instances, the allocator's pages and the connections' buffers.
        run("2")
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
        result = run(SECONDS)
        subprocess.run(["callgrind_control", "--dump=measured", str(proc.pid)], check=True,
                       capture_output=True)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    dumps = [path for path in glob.glob(f"{prefix}.{proc.pid}*")
             if "Trigger: dump measured" in open(path).read(4096)]
    if len(dumps) != 1:
        raise RuntimeError(f"expected one dump of the measured load in {out}, found {dumps}")
    text = open(dumps[0]).read()
    events = re.search(r"^events: (.+)$", text, re.M)
    summary = re.search(r"^summary: ([\d ]+)$", text, re.M)
    if events is None or summary is None or events.group(1).split() != EVENTS:
        raise RuntimeError(f"no totals of {EVENTS} in {dumps[0]}")
    totals = dict(zip(EVENTS, map(int, summary.group(1).split())))
    requests = result["acked_events"]
    if requests == 0 or result.get("failed", 0):
        raise RuntimeError(f"the load under callgrind failed: {result}")
    per = lambda *names: sum(totals[n] for n in names) / requests
    return {"instructions": totals["Ir"], "requests": requests, "per_request": per("Ir"),
            # Cache lines missed a request: data (reads and writes) and code, in
            # the first level and in the L2.
            "d1_misses": per("D1mr", "D1mw"), "i1_misses": per("I1mr"),
            "l2_misses": per("ILmr", "DLmr", "DLmw")}


def main():
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        def out(name):
            """A directory of its own for one server's dumps and valgrind's log."""
            path = os.path.join(tmp, name)
            os.makedirs(path)
            return path

        axum = counted([os.path.join(BIN, "baseline-server"), "--listen", f"127.0.0.1:{PORT}"],
                       "/events", out("axum"))
        for plugin, name in (("fail", "trivial"), ("enricher", "enricher")):
            floor = counted([os.path.join(BIN, "examples", "floor-server"), f"{PLUGINS}/{plugin}.wasm",
                             f"127.0.0.1:{PORT}"], "/events", out(f"floor-{name}"))
            router = counted([os.path.join(BIN, "router"), "serve", "--admin-listen", "127.0.0.1:0",
                              "--no-watch", "--config", router_config(tmp, plugin), "--listen",
                              f"127.0.0.1:{PORT}"], "/healthz", out(f"router-{name}"))
            results[name] = {
                "axum": axum,
                "floor": floor,
                "router": router,
                "floor_over_axum": floor["per_request"] / axum["per_request"],
                "router_over_axum": router["per_request"] / axum["per_request"],
                "router_over_floor": router["per_request"] / floor["per_request"],
            }
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
