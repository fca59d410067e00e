#!/usr/bin/env python3
"""Start-up with large components, cold and with a warm compile cache.

Builds three Python handler components (componentize-py; each embeds the
interpreter, 15-20 MB) that differ in one constant, so each is compiled on its
own, then times `router serve` from exec to its "router serving" log line: with
an empty `[compile_cache]` directory (every component compiled), and with the
cache that run left (every component loaded). The floor is the same router with
no plugins. Runs alternate, five of each; medians in ms. JSON on stdout.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
ROUTER = os.path.join(TARGET, "release", "router")
WORK = os.path.join(TARGET, "bench", "startup")
RUNS = int(os.environ.get("STARTUP_RUNS", "5"))

HANDLER = """
import wit_world

VARIANT = {n}


class WitWorld(wit_world.WitWorld):
    def handle(self, event):
        return []
"""


def build(n):
    """The n-th component, built once (componentize-py takes ~30 s)."""
    out = os.path.join(WORK, f"py-{n}.wasm")
    if os.path.exists(out):
        return out
    src = os.path.join(WORK, f"src-{n}")
    os.makedirs(src, exist_ok=True)
    with open(os.path.join(src, "app.py"), "w") as f:
        f.write(HANDLER.format(n=n))
    subprocess.run(
        ["componentize-py", "-d", os.path.join(ROOT, "wit", "router.wit"), "-w", "handler",
         "componentize", "app", "-o", out],
        cwd=src, check=True, stdout=subprocess.DEVNULL)
    return out


def serve_ms(config):
    """Milliseconds from exec to the log line saying the router serves."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [ROUTER, "serve", "--config", config, "--listen", "127.0.0.1:0",
         "--admin-listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "RUST_LOG": "router=info", "NO_COLOR": "1"})
    try:
        for line in child.stderr:
            if "router serving" in line:
                return (time.perf_counter() - start) * 1000
            if "error" in line.lower() and "ERROR" in line:
                raise SystemExit(f"router failed to start: {line}")
        raise SystemExit("router exited before serving")
    finally:
        child.kill()
        child.wait()


def main():
    if shutil.which("componentize-py") is None:
        json.dump({"skipped": "componentize-py is not installed (pip install componentize-py==0.25.1)"},
                  sys.stdout)
        return
    os.makedirs(WORK, exist_ok=True)
    components = [build(n) for n in range(3)]
    sizes = [os.path.getsize(c) for c in components]
    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "cache")
        plugins = "".join(
            f'[[plugin]]\nname = "py{n}"\npath = "{c}"\n\n' for n, c in enumerate(components))
        with_plugins = os.path.join(tmp, "plugins.toml")
        with open(with_plugins, "w") as f:
            f.write(f'[compile_cache]\ndir = "{cache}"\n\n{plugins}')
        bare = os.path.join(tmp, "bare.toml")
        with open(bare, "w") as f:
            f.write("")
        cold, warm, floor = [], [], []
        for _ in range(RUNS):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(serve_ms(with_plugins))
            warm.append(serve_ms(with_plugins))
            floor.append(serve_ms(bare))
    json.dump({
        "components": len(components),
        "sizes_mb": [round(s / 1e6, 1) for s in sizes],
        "cold_ms": statistics.median(cold),
        "cold_range": [min(cold), max(cold)],
        "warm_ms": statistics.median(warm),
        "warm_range": [min(warm), max(warm)],
        "floor_ms": statistics.median(floor),
        "runs": RUNS,
    }, sys.stdout, indent=2)


main()
