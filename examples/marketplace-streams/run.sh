#!/usr/bin/env bash
# Runs the marketplace example: a private redis-server (unless REDIS_URL is set),
# a stand-in mail service printing the `send.email` commands (`router sink` on
# port 9025, unless MAIL_URL is set; it answers $MAIL_STATUS, 200 by default, 503
# to watch retries and dead letters), then two `router serve` processes in one
# consumer group on ports 8081 and 8082. Stops everything on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build-examples
router=target/debug/router
pids=()
data=""
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  # The private redis-server's files (not REDIS_URL's).
  if [[ -n "$data" ]]; then rm -rf "$data"; fi
}
trap cleanup EXIT INT TERM

if [[ -z "${REDIS_URL:-}" ]]; then
  data=$(mktemp -d)
  redis-server --port 6390 --bind 127.0.0.1 --dir "$data" --appendonly yes \
    --appendfsync everysec --save '' >"$data/redis.log" &
  pids+=($!)
  export REDIS_URL=redis://127.0.0.1:6390/
  for _ in $(seq 100); do
    redis-cli -p 6390 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p 6390 ping >/dev/null || {
    echo "redis-server did not start on port 6390:" >&2
    cat "$data/redis.log" >&2
    exit 1
  }
fi

if [[ -z "${MAIL_URL:-}" ]]; then
  "$router" sink --listen 127.0.0.1:9025 --status "${MAIL_STATUS:-200}" &
  pids+=($!)
  export MAIL_URL=http://127.0.0.1:9025/
fi

for port in 8081 8082; do
  # Each its own admin API too: 9081 and 9082.
  ROUTER_LISTEN=127.0.0.1:$port "$router" serve \
    --admin-listen 127.0.0.1:$((port + 1000)) \
    --config examples/marketplace-streams/router.toml &
  pids+=($!)
  echo "marketplace: router on :$port is pid $!" >&2
done
echo "marketplace: routers on http://127.0.0.1:8081 and :8082 (admin APIs on :9081 and :9082), Redis at $REDIS_URL" >&2
echo "mail commands go to $MAIL_URL; see examples/marketplace-streams/README.md" >&2
wait
