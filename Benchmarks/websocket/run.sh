#!/usr/bin/env bash
# WebSocket benchmark: tapper vs nginx vs direct, in ONE run, on 127.0.0.1.
#
# Backend: a WebSocket echo server (Benchmarks/websocket/wsbench.py, asyncio, standard library).
# Proxies, each with ONE worker/thread:
#   nginx   proxy_pass with proxy_http_version 1.1 and the Upgrade map nginx documents
#           (map $http_upgrade $connection_upgrade), proxy_read_timeout 1 h, 1 worker
#   tapper  gateway serve --threads 1 --no-access-log (embedded registry)
# The load client and the backend share CPU 0, the proxies CPU 1 (taskset), as in
# Benchmarks/gateway/run.sh. The Python peers limit the round-trip rate, so the column to
# compare is the proxy's CPU per round trip (from /proc/PID/stat over the run), beside
# round trips/s and latency.
#
# Then, per proxy: RSS growth with --idle N (default 10,000) idle tunnels open (VmRSS before and
# after, divided by N) and the CPU the proxy uses over 10 s while they sit idle.
#
# Usage: Benchmarks/websocket/run.sh [--seconds 10] [--reps 3] [--conns 16] [--size 32] [--idle 10000]
#        (TAPPER_BIN=path measures that tapper binary instead of building the release one)
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_PER=10
REPS=3
CONNS=16
SIZE=32
IDLE=10000
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

. Benchmarks/lib.sh
bench_install nginx curl
bench_tapper
bench_workdir tapper-ws-bench
# Every tunnel is two descriptors in a proxy and one in each peer.
ulimit -n $((4 * IDLE + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ $((2 * IDLE + 512)) -gt "$(ulimit -n)" ]; then
  IDLE=$(( ($(ulimit -n) - 512) / 2 ))
  echo "open-files limit $(ulimit -n) (no CAP_SYS_RESOURCE to raise it): measuring $IDLE idle tunnels" >&2
fi

WSB=Benchmarks/websocket/wsbench.py
BACKEND=19181; NGINX=19190; TAPPER_PORT=19192; REG=19193
require_free_ports $BACKEND $NGINX $TAPPER_PORT $REG

mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile $((4 * IDLE + 4096));
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections $((3 * IDLE + 1024)); }
http {
  access_log off;
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:$NGINX backlog=4096;
    location / {
      proxy_pass http://127.0.0.1:$BACKEND;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }
  }
}
CONF

taskset -c $LOADCPU python3 $WSB server $BACKEND & PIDS+=($!)
taskset -c $SERVERCPU nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' -e "$WORK/nginx/error.log" & PIDS+=($!); NGINX_PID=$!
taskset -c $SERVERCPU "$TAPPER" gateway serve --port $TAPPER_PORT --registry-port $REG --threads 1 --no-access-log --log-level warning \
  > "$WORK/tapper.log" 2>&1 & PIDS+=($!); TAPPER_PID=$!
wait_http "http://127.0.0.1:$BACKEND/health"
wait_http "http://127.0.0.1:$REG/v1/health"
"$TAPPER" service register echo --url "http://127.0.0.1:$BACKEND" --route 'WS /ws' --ttl 86400 --registry "http://127.0.0.1:$REG" >/dev/null
wait_http "http://127.0.0.1:$TAPPER_PORT/ws"
wait_http "http://127.0.0.1:$NGINX/ws"
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)

declare -A RT P50 P99 CPU
run_one() { # name port pid
  local name=$1 port=$2 pid=$3 before after out
  before=${pid:+$(cpu_ticks "$pid")}
  out=$(taskset -c $LOADCPU python3 $WSB echo "ws://127.0.0.1:$port/ws" --conns "$CONNS" --seconds "$SECONDS_PER" --size "$SIZE")
  after=${pid:+$(cpu_ticks "$pid")}
  local rt n p50 p99
  rt=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["per_second"])' "$out")
  n=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["round_trips"])' "$out")
  p50=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["p50_ms"])' "$out")
  p99=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["p99_ms"])' "$out")
  RT[$name]+="$rt "
  P50[$name]+="$p50 "
  P99[$name]+="$p99 "
  if [ -n "$pid" ]; then
    CPU[$name]+="$(awk -v t=$((after - before)) -v hz="$TICK" -v r="$n" 'BEGIN { printf "%.1f", t / hz * 1e6 / r }') "
  fi
}

# Warm-up.
for p in $BACKEND $NGINX $TAPPER_PORT; do taskset -c $LOADCPU python3 $WSB echo "ws://127.0.0.1:$p/ws" --conns 4 --seconds 1 >/dev/null; done
for r in $(seq "$REPS"); do
  echo "echo round trips, repetition $r/$REPS" >&2
  run_one direct $BACKEND ""
  run_one nginx $NGINX "$NGINX_WORKER"
  run_one tapper $TAPPER_PORT "$TAPPER_PID"
done

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
declare -A IDLE_RSS IDLE_CPU IDLE_OPEN
idle_one() { # name port pid
  local name=$1 port=$2 pid=$3 before after fifo holder t0 t1 line
  before=$(rss_kb "$pid")
  fifo="$WORK/idle-$name.in"
  mkfifo "$fifo"
  taskset -c $LOADCPU python3 $WSB idle "ws://127.0.0.1:$port/ws" --conns "$IDLE" < "$fifo" > "$WORK/idle-$name.out" 2>&1 &
  holder=$!
  exec 9>"$fifo"
  local deadline=$((SECONDS + 300))
  until grep -q '^open' "$WORK/idle-$name.out"; do
    kill -0 $holder 2>/dev/null || { echo "the idle client for $name failed:" >&2; tail -3 "$WORK/idle-$name.out" >&2; tail -5 "$WORK/nginx/error.log" >&2; exit 1; }
    [ $SECONDS -lt $deadline ] || { echo "timed out opening $IDLE tunnels through $name" >&2; exit 1; }
    sleep 0.2
  done
  line=$(grep '^open' "$WORK/idle-$name.out")
  IDLE_OPEN[$name]=${line#open }
  # Settle first: each tunnel's handshake left timers armed for its request deadlines (header
  # read 10 s, upstream 5 s) that fire once, find the deadline moved and re-arm for the tunnel
  # idle timeout; the idle state is what comes after.
  sleep 15
  after=$(rss_kb "$pid")
  t0=$(cpu_ticks "$pid")
  sleep 10
  t1=$(cpu_ticks "$pid")
  IDLE_RSS[$name]=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.1f", (a - b) / n }')
  IDLE_CPU[$name]=$(awk -v t=$((t1 - t0)) -v hz="$TICK" 'BEGIN { printf "%.1f", t / hz * 1000 / 10 }')
  exec 9>&-
  wait $holder || true
}
echo "opening $IDLE idle tunnels through nginx, then tapper" >&2
idle_one nginx $NGINX "$NGINX_WORKER"
idle_one tapper $TAPPER_PORT "$TAPPER_PID"

echo
echo "WebSocket benchmark: $(nproc) CPUs, peers on CPU $LOADCPU, proxies on CPU $SERVERCPU; $CONNS connections, ${SIZE}-byte messages, ${SECONDS_PER}s x $REPS reps (medians)"
printf '%-8s %14s %10s %10s %16s\n' target "round trips/s" "p50 ms" "p99 ms" "CPU µs/round trip"
for t in direct nginx tapper; do
  printf '%-8s %14s %10s %10s %16s\n' "$t" "$(median <<<"${RT[$t]}")" "$(median <<<"${P50[$t]}")" "$(median <<<"${P99[$t]}")" \
    "$( [ "$t" = direct ] && echo - || median <<<"${CPU[$t]}")"
done
tn_cpu=$(median <<<"${CPU[tapper]}"); ng_cpu=$(median <<<"${CPU[nginx]}")
echo "tapper/nginx: round trips/s $(awk -v a="$(median <<<"${RT[tapper]}")" -v b="$(median <<<"${RT[nginx]}")" 'BEGIN { printf "%.2f", a / b }'), p99 $(awk -v a="$(median <<<"${P99[tapper]}")" -v b="$(median <<<"${P99[nginx]}")" 'BEGIN { printf "%.2f", a / b }'), CPU per round trip $(awk -v a="$tn_cpu" -v b="$ng_cpu" 'BEGIN { printf "%.2f", a / b }')"
echo
echo "Idle tunnels: $IDLE opened through each proxy (each checked with one echo), held silent"
printf '%-8s %10s %18s %22s\n' proxy open "RSS KB per tunnel" "CPU ms/s while idle"
for t in nginx tapper; do
  printf '%-8s %10s %18s %22s\n' "$t" "${IDLE_OPEN[$t]}" "${IDLE_RSS[$t]}" "${IDLE_CPU[$t]}"
done
