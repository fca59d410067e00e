#!/usr/bin/env bash
# Runs the whole benchmark suite and writes BENCHMARKS.md at the repository root.
# Needs taskset (util-linux), python3, redis-server, redis-benchmark, wrk,
# valgrind, Node.js with npm, and componentize-py (pip install
# componentize-py==0.25.1, for bench/startup.py). Takes about 45 minutes on 2
# cores: 10 to build (release builds link with LTO), 10 of the memory soak
# (SOAK_SECONDS shortens it).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target/bench"
# When the run began, for the report's header (it is written at the end).
date -u '+%Y-%m-%d %H:%M' > "$target/bench/started"

cargo build --release -p loadgen -p baseline-server -p router --features router/examples
# The floor server: bare axum, decoding and a bare wasmtime call (bench/run.py).
cargo build --release -p router --features router/examples --example floor-server
python3 bench/run.py > "$target/bench/e2e.json"
# The same servers' user-space instructions per request, under callgrind.
python3 bench/instructions.py > "$target/bench/instructions.json"
python3 bench/redis.py > "$target/bench/redis.json"
python3 bench/cluster.py > "$target/bench/cluster.json"
python3 bench/soak.py > "$target/bench/soak.json"
python3 bench/startup.py > "$target/bench/startup.json"
# ISOLATION_OLD_ROUTER=path/to/an/older/router compares with it in alternating pairs.
python3 bench/isolation.py > "$target/bench/isolation.json"
# The overhead of a shadow version on the live path, with and without one.
python3 bench/shadow.py > "$target/bench/shadow.json"
# What archiving costs per event, and replay throughput. The criterion benches'
# stderr (the build, criterion's warnings) goes to $target/bench/NAME.err.
cargo bench -p router --bench archive 2>"$target/bench/archive.err" | tee "$target/bench/archive.txt"
# The same plugin in Rust, Python and JavaScript (the components come from
# tests/polyglot, which installs the Python and JS toolchains under target/).
cargo build -p polyglot-artifacts
python3 bench/languages.py > "$target/bench/languages.json"
cargo bench -p router --bench languages 2>"$target/bench/languages.err" | tee "$target/bench/languages.txt"
cargo bench -p router --bench pipeline 2>"$target/bench/pipeline.err" | tee "$target/bench/pipeline.txt" | grep -E "time:" || true
cargo bench -p router --bench instances 2>"$target/bench/instances.err" | tee "$target/bench/instances.txt"
cargo bench -p router --bench reload 2>"$target/bench/reload.err" | tee "$target/bench/reload.txt"
cargo bench -p router --bench ecommerce_latency 2>"$target/bench/ecommerce_latency.err" | tee "$target/bench/ecommerce.txt"
python3 bench/report.py "$target/bench" > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
