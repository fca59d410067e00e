#!/usr/bin/env python3
"""CPU per request of the same plugin written in Rust, Python and JavaScript.

The enricher (copies the event under a new id and type, adds two extensions; the
copy is routed again) built with each SDK (plugins/enricher, plugins/python/enricher,
plugins/js/enricher), behind the same router: wrk, 1 thread, 32 connections,
one binary-mode event per request, the router pinned to core 0 and wrk to core 1
(the set-up of bench/run.py's wrk rows). The three routers run one after the
other, five rounds; each language's figure is the median over rounds of its
ratio to the Rust run of the same round. JSON on stdout.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BIN, PAIRS, ROOT, Server, med, wrk_measured  # noqa: E402

COMPONENTS = {
    "rust": os.path.join(ROOT, "target", "wasm-plugins", "wasm32-wasip2", "release", "enricher.wasm"),
    "python": os.path.join(ROOT, "target", "wasm-plugins", "python", "enricher.wasm"),
    "javascript": os.path.join(ROOT, "target", "wasm-plugins", "js", "enricher.wasm"),
}


def config(directory, lang):
    path = os.path.join(directory, f"languages-{lang}.toml")
    cache = os.path.join(directory, "compile-cache")
    with open(path, "w") as f:
        f.write(f"""[compile_cache]
dir = "{cache}"
[ingest]
max_in_flight = 100000
[[plugin]]
name = "enricher"
path = "{COMPONENTS[lang]}"
instances = 8
memory_limit = "64MiB"
[[route]]
name = "bench"
filter = {{ exact = {{ type = "bench.event" }} }}
handler = "enricher"
""")
    return path


def main():
    for lang, path in COMPONENTS.items():
        if not os.path.isfile(path):
            sys.exit(f"{path} is missing: build it with `cargo build -p polyglot-artifacts` ({lang})")
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(PAIRS):
            round_ = {}
            for lang in COMPONENTS:
                argv = [os.path.join(BIN, "router"), "serve", "--admin-listen", "127.0.0.1:0", "--no-watch",
                        "--config", config(tmp, lang), "--listen", "127.0.0.1:18080"]
                # The first start of a Python or JavaScript router compiles for seconds.
                with Server(argv, "http://127.0.0.1:18080/healthz") as server:
                    wrk_measured(server, 18080, duration=1)  # warm every instance
                    round_[lang] = wrk_measured(server, 18080)
                print(f"languages round {i} {lang}: {round_[lang]['requests_per_s']:.0f} req/s, "
                      f"{round_[lang]['cpu_us_per_event']:.1f} us CPU per request", file=sys.stderr)
            rounds.append(round_)
    results = {}
    for lang in COMPONENTS:
        cpu_ratios = [r[lang]["cpu_us_per_event"] / r["rust"]["cpu_us_per_event"] for r in rounds]
        rps_ratios = [r[lang]["requests_per_s"] / r["rust"]["requests_per_s"] for r in rounds]
        results[lang] = {
            "requests_per_s": med([r[lang]["requests_per_s"] for r in rounds]),
            "cpu_us_per_request": med([r[lang]["cpu_us_per_event"] for r in rounds]),
            "cpu_ratio": med(cpu_ratios), "cpu_ratio_min": min(cpu_ratios), "cpu_ratio_max": max(cpu_ratios),
            "rps_ratio": med(rps_ratios),
            "failed": sum(r[lang]["failed"] for r in rounds),
        }
    json.dump({"rounds": len(rounds), "languages": results}, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
