#!/usr/bin/env bash
# Faults under load (127.0.0.1 only, bounded; release build). Each scenario prints its figures
# and the count of failed requests, which must be 0 unless the scenario says otherwise:
#   1 connections  1,000 concurrent keep-alive connections for 60 s; gateway RSS before/after
#   2 instance     one of two instances SIGKILLed mid-load (GET)
#   3 registry     the remote registry SIGKILLed for 30 s mid-load, then restarted; a service
#                  registered after the restart must become routable
#   4 drain        SIGTERM to the gateway with slow requests in flight: all must complete
#   5 hang         an instance that accepts and never answers: its requests get 504 at --timeout
#                  (or are retried elsewhere), it is ejected, the other instance's traffic is unaffected
# Usage: Benchmarks/chaos/run.sh [SCENARIO...]   (default: all; durations scale with CHAOS_SCALE=0.5 etc.)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SCALE=${CHAOS_SCALE:-1}
secs() { python3 -c "print(max(2, int($1 * $SCALE)))"; }
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(connections instance registry drain hang)
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx)
if ((${#need[@]})); then DEBIAN_FRONTEND=noninteractive apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
# The release binary as shipped: Swift runtime and Foundation linked in (see README).
TAPPER=$(scripts/build-release)
WORK=$(mktemp -d /tmp/tapper-chaos.XXXXXX)
PIDS=()
# The parent first (an nginx master whose worker died first would fork a new one), then the
# children it had: killed after their parent, they would be orphaned beyond pkill -P's reach.
kill_tree() { local kids; kids=$(pgrep -P "$1" || true); kill -9 "$1" 2>/dev/null || true; [ -z "$kids" ] || kill -9 $kids 2>/dev/null || true; }
cleanup() { for p in "${PIDS[@]}"; do kill_tree "$p"; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # URL [seconds]
  local deadline=$((SECONDS + ${2:-20}))
  until curl -fs -o /dev/null "$1"; do [ $SECONDS -lt $deadline ] || { echo "timed out waiting for $1" >&2; return 1; }; sleep 0.05; done
}
nginx_backend() { # PORT -> pid
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$1 backlog=4096; location / { default_type application/json; return 200 '{"backend": $1}'; } } }
CONF
  nginx -c "$WORK/$1/nginx.conf" -g 'daemon off;' -e "$WORK/$1/error.log" & PIDS+=($!)
  LAST_PID=$!
}
gateway() { # extra args...; sets GW, REG, GW_PID
  GW=$(free_port); REG=$(free_port)
  "$TAPPER" gateway serve --port "$GW" --registry-port "$REG" --no-access-log --log-level warning "$@" > "$WORK/gateway-$GW.log" 2>&1 & PIDS+=($!)
  GW_PID=$!
}
register() { # NAME URL ROUTE REGISTRY
  "$TAPPER" service register "$1" --url "$2" --route "$3" --ttl 600 --registry "$4" >/dev/null
}
rss_mb() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
cat > "$WORK/tally.lua" <<'LUA'
statuses = {}  -- global: done() reads it from each thread with thread:get
local threads = {}
setup = function(thread) table.insert(threads, thread) end
response = function(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests %d, non-2xx %d, socket errors %d (connect %d read %d write %d timeout %d), p99 %.1f ms\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, e.connect, e.read, e.write, e.timeout, latency:percentile(99) / 1000))
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do io.write(string.format("  status %s: %d\n", k, v)) end
  end
  io.write(string.format("FAILED %d\n", e.status + e.connect + e.read + e.write + e.timeout))
end
LUA
failed_of() { awk '/^FAILED/ {print $2}' <<<"$1"; }
RESULTS=()
report() { RESULTS+=("$1"); echo "$1"; }

for scenario in "${SCENARIOS[@]}"; do
  echo; echo "=== $scenario"
  case "$scenario" in
  connections)
    ulimit -n 65536 2>/dev/null || true
    B=$(free_port); nginx_backend "$B"
    gateway --no-health-checks
    wait_for "http://127.0.0.1:$REG/v1/health"; wait_for "http://127.0.0.1:$B/"
    register users "http://127.0.0.1:$B" 'GET /users/{id}' "http://127.0.0.1:$REG"
    wait_for "http://127.0.0.1:$GW/users/1"
    before=$(rss_mb "$GW_PID")
    d=$(secs 60)
    out=$(wrk -t1 -c1000 -d"${d}s" --timeout 10s -s "$WORK/tally.lua" "http://127.0.0.1:$GW/users/1")
    echo "$out" | grep -E "Requests/sec|requests |status "
    report "connections: 1000 keep-alive connections for ${d}s, failed $(failed_of "$out"), gateway RSS $before before, $(rss_mb "$GW_PID") after"
    kill_tree "$GW_PID"
    ;;
  instance)
    B1=$(free_port); B2=$(free_port)
    nginx_backend "$B1"; nginx_backend "$B2"; B2_PID=$LAST_PID
    gateway --health-interval 1
    wait_for "http://127.0.0.1:$REG/v1/health"; wait_for "http://127.0.0.1:$B1/"; wait_for "http://127.0.0.1:$B2/"
    for b in $B1 $B2; do register users "http://127.0.0.1:$b" 'GET /users/{id}' "http://127.0.0.1:$REG"; done
    wait_for "http://127.0.0.1:$GW/users/1"
    d=$(secs 30)
    ( sleep $((d / 2)); kill_tree "$B2_PID" ) & killer=$!
    out=$(wrk -t1 -c32 -d"${d}s" -s "$WORK/tally.lua" "http://127.0.0.1:$GW/users/1")
    wait $killer || true
    echo "$out" | grep -E "Requests/sec|requests |status "
    report "instance: one of two instances SIGKILLed at $((d / 2)) s of ${d}s, failed $(failed_of "$out")"
    kill_tree "$GW_PID"
    ;;
  registry)
    B=$(free_port); nginx_backend "$B"
    R=$(free_port)
    mkdir -p "$WORK/registry-data"
    "$TAPPER" registry serve --port "$R" --data-dir "$WORK/registry-data" --log-level warning > "$WORK/registry.log" 2>&1 & PIDS+=($!)
    R_PID=$!
    wait_for "http://127.0.0.1:$R/v1/health"; wait_for "http://127.0.0.1:$B/"
    GW=$(free_port)
    "$TAPPER" gateway serve --port "$GW" --registry "http://127.0.0.1:$R" --no-access-log --discovery-interval 2 --log-level warning > "$WORK/gateway-remote.log" 2>&1 & PIDS+=($!)
    GW_PID=$!
    register users "http://127.0.0.1:$B" 'GET /users/{id}' "http://127.0.0.1:$R"
    wait_for "http://127.0.0.1:$GW/users/1"
    down=$(secs 30); d=$((down + 20))
    (
      sleep 5; kill -9 "$R_PID"; echo "  registry killed at 5 s"
      sleep "$down"
      "$TAPPER" registry serve --port "$R" --data-dir "$WORK/registry-data" --log-level warning >> "$WORK/registry.log" 2>&1 &
      echo $! > "$WORK/registry2.pid"
      echo "  registry restarted at $((5 + down)) s"
    ) & chaos=$!
    out=$(wrk -t1 -c32 -d"${d}s" -s "$WORK/tally.lua" "http://127.0.0.1:$GW/users/1")
    wait $chaos || true
    PIDS+=("$(cat "$WORK/registry2.pid")")
    echo "$out" | grep -E "Requests/sec|requests |status "
    wait_for "http://127.0.0.1:$R/v1/health"
    register orders "http://127.0.0.1:$B" 'GET /orders/{id}' "http://127.0.0.1:$R"
    t0=$(date +%s%N)
    if wait_for "http://127.0.0.1:$GW/orders/1" 30; then routable="routable after $(( ($(date +%s%N) - t0) / 1000000 )) ms"; else routable="NOT routable"; fi
    report "registry: killed for ${down}s under load, failed $(failed_of "$out"); a service registered after the restart was $routable"
    kill_tree "$GW_PID"
    ;;
  drain)
    S=$(free_port)
    python3 Benchmarks/chaos/slow_upstream.py slow "$S" & PIDS+=($!)
    wait_for "http://127.0.0.1:$S/?ms=1"
    gateway --drain-timeout 10 --timeout 10
    wait_for "http://127.0.0.1:$REG/v1/health"
    register slow "http://127.0.0.1:$S" 'GET /slow' "http://127.0.0.1:$REG"
    wait_for "http://127.0.0.1:$GW/slow?ms=1"
    n=20
    CURLS=()
    for i in $(seq $n); do curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$GW/slow?ms=2000" > "$WORK/drain-$i" & CURLS+=($!); done
    sleep 0.5  # let every request reach the upstream before the signal
    kill -TERM "$GW_PID"
    refused_at=""
    t0=$(date +%s%N)
    while kill -0 "$GW_PID" 2>/dev/null; do
      if [ -z "$refused_at" ] && ! curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$GW/health"; then refused_at=$(( ($(date +%s%N) - t0) / 1000000 )); fi
      sleep 0.05
    done
    wait_status=0; wait "$GW_PID" || wait_status=$?
    for c in "${CURLS[@]}"; do wait "$c" || true; done
    ok=$(cat "$WORK"/drain-* | grep -c '^200$' || true)
    report "drain: SIGTERM with $n slow (2 s) requests in flight: $ok/$n completed with 200, failed $((n - ok)); new connections refused from ${refused_at:-?} ms after the signal; gateway exit status $wait_status"
    ;;
  hang)
    B=$(free_port); nginx_backend "$B"
    H=$(free_port)
    python3 Benchmarks/chaos/slow_upstream.py hang "$H" & PIDS+=($!)
    wait_for "http://127.0.0.1:$B/"
    gateway --timeout 1 --health-interval 1 --health-timeout 0.5
    wait_for "http://127.0.0.1:$REG/v1/health"
    register users "http://127.0.0.1:$B" 'GET /users/{id}' "http://127.0.0.1:$REG"
    register users "http://127.0.0.1:$H" 'GET /users/{id}' "http://127.0.0.1:$REG"
    wait_for "http://127.0.0.1:$GW/users/1"
    d=$(secs 20)
    out=$(wrk -t1 -c16 -d"${d}s" --timeout 5s -s "$WORK/tally.lua" "http://127.0.0.1:$GW/users/1")
    echo "$out" | grep -E "Requests/sec|requests |status "
    state=$(curl -s "http://127.0.0.1:$GW/_tapper/status" | python3 -c "import json,sys; d=json.load(sys.stdin); print(', '.join(i['url'].rsplit(':',1)[1] + '=' + i['state'] for s in d['services'] for i in s['instances']))")
    after=$(for i in $(seq 200); do curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$GW/users/$i"; done | grep -vc '^200$' || true)
    n504=$(awk '/status 504/ {print $3}' <<<"$out"); n504=${n504:-0}
    report "hang: instance $H never answers: ${n504} requests answered 504 at --timeout 1s, other failures $(( $(failed_of "$out") - n504 )); instances now: $state; 200 follow-up requests: $after failed"
    kill_tree "$GW_PID"
    ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
done
echo; echo "=== summary"
printf '%s\n' "${RESULTS[@]}"
