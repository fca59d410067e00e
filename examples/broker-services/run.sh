#!/usr/bin/env bash
# The broker example in one command, from anywhere in the repository:
#
#   examples/broker-services/run.sh          # runs the flow, then stays up (Ctrl-C stops it)
#   examples/broker-services/run.sh --once   # runs the flow and stops
#
# Builds the router (with the example plugins) and the service program, starts the
# router on router.toml (127.0.0.1:8080) and the services orders (7001), billing
# (7002) and shipping (7003), places $ORDERS orders (5 by default), waits until
# the last shipment is back at orders, then shows the audit trail and a read-model
# answer. Everything it started is stopped when it exits. Logs and the audit trail
# are in target/broker-services/. Needs bash, curl, sed and a Rust toolchain.
set -euo pipefail

cd "$(dirname "$0")/../.."
orders=${ORDERS:-5}
router_url=http://127.0.0.1:8080
work=$PWD/target/broker-services
rm -rf "$work"
mkdir -p "$work"

cargo build-examples

pids=()
stop() {
  # Only what this script started, by pid.
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

# Waits until a URL answers 2xx (at most 30 s).
wait_for() {
  for _ in $(seq 300); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "$1 did not come up; see $work/*.log" >&2
  exit 1
}

AUDIT_FILE=$work/audit-trail.jsonl DEAD_LETTER_FILE=$work/dead-letters.jsonl \
  target/debug/router serve --config examples/broker-services/router.toml --no-watch \
  >"$work/router.log" 2>&1 &
pids+=($!)

service() { # name port reactions...
  local name=$1 port=$2
  shift 2
  target/debug/examples/broker-service --name "$name" --listen "127.0.0.1:$port" \
    --router "$router_url/events" "$@" >/dev/null 2>"$work/$name.log" &
  pids+=($!)
}
service orders 7001
service billing 7002 --on order.placed=invoice.issued
service shipping 7003 --on invoice.issued=shipment.dispatched

wait_for "$router_url/healthz"
for port in 7001 7002 7003; do wait_for "http://127.0.0.1:$port/received"; done

echo "== placing $orders orders at the orders service"
curl -sf -X POST "http://127.0.0.1:7001/publish?type=order.placed&count=$orders"
echo

# The flow is done when the router has answered every shipment (answered: routed
# and appended to the audit trail) and orders has received them.
for _ in $(seq 300); do
  shipped=$(curl -sf http://127.0.0.1:7003/published/count)
  received=$(curl -sf http://127.0.0.1:7001/received/count)
  [ "$shipped" -ge "$orders" ] && [ "$received" -ge "$orders" ] && break
  sleep 0.1
done
echo "== shipping published $shipped shipments, orders received $received"

# One value of a one-line JSON object, by key: enough for the trail's lines,
# where each of these keys occurs once (the data is {"orderId", "seq"}).
field() { # key line
  sed -E "s/.*\"$1\":\"?([^\",}]*).*/\1/" <<<"$2"
}
echo "== the audit trail ($work/audit-trail.jsonl): source, id, type, seq"
while IFS= read -r line; do
  printf '%-19s %-45s %-20s %s\n' "$(field source "$line")" "$(field id "$line")" \
    "$(field type "$line")" "$(field seq "$line")"
done <"$work/audit-trail.jsonl"

echo "== asking the read model about o-1: the router's answer names the answer event"
curl -sf "$router_url/events" -H 'content-type: application/cloudevents+json' \
  -d '{"specversion":"1.0","id":"query-o-1","source":"/run.sh","type":"readmodel.query","data":{"orderId":"o-1"}}'
echo
echo "== ... and the audit trail has it whole"
grep -F '"id":"query-o-1-answer"' "$work/audit-trail.jsonl"

if [ "${1:-}" != "--once" ]; then
  echo "== running: router $router_url, services on 7001-7003; Ctrl-C stops everything"
  wait
fi
