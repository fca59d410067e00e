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


def counted(argv, ready_path, out):
    """Instructions and requests of the server `argv` under callgrind."""
    prefix = os.path.join(out, "callgrind.out")
    env = dict(os.environ, RUST_LOG="warn", ROUTER_INSTANCE_ALLOCATOR="on-demand")
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={prefix}.%p", "--dump-instr=no"]
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
    total = re.search(r"^summary: (\d+)", text, re.M)
    if total is None:
        raise RuntimeError(f"no instruction total in {dumps[0]}")
    requests = result["acked_events"]
    if requests == 0 or result.get("failed", 0):
        raise RuntimeError(f"the load under callgrind failed: {result}")
    return {"instructions": int(total.group(1)), "requests": requests,
            "per_request": int(total.group(1)) / requests}


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
