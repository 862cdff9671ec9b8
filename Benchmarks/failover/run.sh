#!/usr/bin/env bash
# Failover under load (127.0.0.1 only, bounded): wrk sends GETs through `tapper gateway serve`
# to two nginx backends for 30 s; halfway through one backend is killed with SIGKILL.
# wrk runs one thread so the Lua per-backend tally is complete. Prints wrk's totals, the count of non-2xx responses and socket errors (both must be 0),
# and which backend served how much.
# Usage: Benchmarks/failover/run.sh [--duration 30] [--connections 32]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=30
CONNS=32
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
if ((${#need[@]})); then DEBIAN_FRONTEND=noninteractive apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
# The release binary as shipped: Swift runtime and Foundation linked in (see README).
TAPPER=$(scripts/build-release)
WORK=$(mktemp -d /tmp/tapper-failover.XXXXXX)
PIDS=()
# nginx forks a worker: kill the master's children too, or the "killed" backend keeps serving.
# The parent first (an nginx master whose worker died first would fork a new one), then the
# children it had: killed after their parent, they would be orphaned beyond pkill -P's reach.
kill_tree() { local kids; kids=$(pgrep -P "$1" || true); kill -9 "$1" 2>/dev/null || true; [ -z "$kids" ] || kill -9 $kids 2>/dev/null || true; }
cleanup() { for p in "${PIDS[@]}"; do kill_tree "$p"; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GW=$(free_port); REG=$(free_port); B1=$(free_port); B2=$(free_port)
for b in $B1 $B2; do
  mkdir -p "$WORK/$b"
  cat > "$WORK/$b/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/$b/nginx.pid;
error_log $WORK/$b/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$b; location / { default_type application/json; return 200 '{"backend": $b}'; } } }
CONF
  nginx -c "$WORK/$b/nginx.conf" -g 'daemon off;' -e "$WORK/$b/error.log" & PIDS+=($!)
done
B2_PID=${PIDS[1]}
"$TAPPER" gateway serve --port $GW --registry-port $REG --no-access-log --health-interval 1 --log-level warning > "$WORK/tapper.log" 2>&1 & PIDS+=($!)
deadline=$((SECONDS + 20))
until curl -fs -o /dev/null "http://127.0.0.1:$REG/v1/health" && curl -fs -o /dev/null "http://127.0.0.1:$B1/"; do
  [ $SECONDS -lt $deadline ] || { echo "servers did not start" >&2; cat "$WORK/tapper.log" >&2; exit 1; }
  sleep 0.05
done
for b in $B1 $B2; do
  "$TAPPER" service register users --url "http://127.0.0.1:$b" --route 'GET /users/{user_id}' --ttl 600 --registry "http://127.0.0.1:$REG" >/dev/null
done
until curl -fs -o /dev/null "http://127.0.0.1:$GW/users/1"; do sleep 0.05; done

cat > "$WORK/count.lua" <<'LUA'
counts = {}
local threads = {}
setup = function(thread) table.insert(threads, thread) end
response = function(status, headers, body)
  local b = body:match('"backend": (%d+)') or ("status " .. status)
  counts[b] = (counts[b] or 0) + 1
end
done = function(summary, latency, requests)
  io.write(string.format("requests %d, non-2xx/3xx %d, socket errors connect %d read %d write %d timeout %d\n",
    summary.requests, summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do io.write(string.format("  answered by %s: %d\n", k, v)) end
  end
end
LUA
( sleep $((DURATION / 2)); kill_tree "$B2_PID"; echo "killed backend $B2 (master and worker, SIGKILL) at $((DURATION / 2)) s" ) &
KILLER=$!
OUT=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/count.lua" --latency "http://127.0.0.1:$GW/users/1")
wait $KILLER || true
echo "$OUT" | grep -E "Requests/sec|50%|99%|requests in|Non-2xx|Socket errors|non-2xx|answered by"
echo "gateway view of the killed backend: $(curl -s "http://127.0.0.1:$GW/_tapper/status" | python3 -c 'import json,sys; d=json.load(sys.stdin); print([(i["id"], i["state"]) for s in d["services"] for i in s["instances"]])')"
bad=$(echo "$OUT" | awk '/non-2xx\/3xx/ {gsub(",","",$4); print $4 + $8 + $10 + $12 + $14}')
echo "failed requests: $bad"
[ "$bad" = "0" ]
