#!/usr/bin/env bash
# Instructions per proxied request of the gateway's data path, counted by callgrind: a count,
# not a time, so it is repeatable on this shared, noisy machine (same binary, same inputs).
#
# tapper (release, --threads 1, embedded registry, no access log) runs under
# `valgrind --tool=callgrind` with instrumentation off; after a warm-up, it is switched on
# for one wrk run (keep-alive GET /users/1 to one nginx backend, 8 connections), then off, and
# the instructions counted are divided by the requests tapper proxied in that window (its own
# tapper_requests_total before and after, so requests in flight at the edges cannot skew it).
#
# Usage: Benchmarks/gateway/callgrind.sh [--duration 5] [--conns 8] [--backends 1] [--h2] [--h2c-upstream]
#        --backends 2: two nginx instances behind the route (as in run.sh): the balancer
#        alternates between them, as do the per-instance caches (tracing's span templates).
#        --h2: the load is h2load over h2c with prior knowledge (2 connections, conns streams each)
#        instead of wrk; --h2c-upstream: the backend is spoken to over h2c (nginx `listen http2`,
#        the registration's --protocol h2c).
#        TAPPER_ARGS="--rate-limit 1000000000/s" adds gateway options (e.g. to cost a feature);
#        TAPPER_BIN=path measures that binary instead of building the release one;
#        CALLGRIND_OUT=file keeps the profile (callgrind_annotate file shows where they go);
#        CALLGRIND_DIR=folder keeps every thread's profile there (the exporter's, with tracing on);
#        CALLGRIND_ARGS="--dump-instr=yes" adds valgrind options (that one: costs per instruction,
#        for Benchmarks/gateway/annotate.py).
# Prints one line: "<instructions per request>k instructions/request on the I/O thread (...)".
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=5
CONNS=8
BACKENDS=1
H2=0
H2C_UP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --backends) BACKENDS=$2; shift 2 ;;
    --h2) H2=1; shift ;;
    --h2c-upstream) H2C_UP=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

. Benchmarks/lib.sh
bench_install wrk nginx valgrind
if ((H2)); then bench_install nghttp2-client; fi
bench_tapper
bench_workdir tapper-callgrind

BACKEND=19181; PORT=19182; REG=19183
((BACKENDS >= 1 && BACKENDS <= 8)) || { echo "--backends: 1 to 8" >&2; exit 2; }
BACKEND_PORTS=($BACKEND); for ((i = 1; i < BACKENDS; i++)); do BACKEND_PORTS+=($((19190 + i))); done
require_free_ports "${BACKEND_PORTS[@]}" $PORT $REG

BACKEND_H2=""; REGISTER_H2=""
if ((H2C_UP)); then BACKEND_H2=http2; REGISTER_H2="--protocol h2c"; fi
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
$(for b in "${BACKEND_PORTS[@]}"; do
  echo "  server { listen 127.0.0.1:$b $BACKEND_H2; location / { default_type application/json; return 200 '{\"user_id\": 1, \"name\": \"Jane Doe\"}'; } }"
done)
}
CONF
nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' -e "$WORK/nginx/error.log" & PIDS+=($!)

# Debian's valgrind cannot read the DWARF 5 the Swift toolchain writes: measure a copy without
# debug info (same code, symbols kept).
strip --strip-debug -o "$WORK/tapper" "$TAPPER"
valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes --callgrind-out-file="$WORK/callgrind.out" ${CALLGRIND_ARGS:-} \
  "$WORK/tapper" gateway serve --port $PORT --registry-port $REG --threads 1 --no-access-log --log-level warning ${TAPPER_ARGS:-} \
  >"$WORK/tapper.log" 2>&1 & PIDS+=($!); TAPPER_PID=$!

wait_slow() { # URL — valgrind starts slowly: 120 s at most
  local deadline=$((SECONDS + 120))
  until curl -fs -o /dev/null "$1"; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for $1" >&2; cat "$WORK/tapper.log" >&2; exit 1; }
    sleep 0.2
  done
}
if ((H2C_UP)); then
  wait_h2c() { local deadline=$((SECONDS + 20)); until curl -fs --http2-prior-knowledge -o /dev/null "$1"; do [ $SECONDS -lt $deadline ] || exit 1; sleep 0.1; done; }
  wait_h2c "http://127.0.0.1:$BACKEND/"
else
  wait_http "http://127.0.0.1:$BACKEND/"
fi
wait_slow "http://127.0.0.1:$REG/v1/health"
for b in "${BACKEND_PORTS[@]}"; do
  "$TAPPER" service register users --url "http://127.0.0.1:$b" --route 'GET /users/{user_id}' --ttl 86400 \
    --registry "http://127.0.0.1:$REG" ${REGISTER_H2:-} >/dev/null
done
wait_slow "http://127.0.0.1:$PORT/users/1"

# Proxied requests so far: the sum of tapper_requests_total (locally answered ones are not in it).
served() { curl -fs "http://127.0.0.1:$PORT/_tapper/metrics" | awk '/^tapper_requests_total/ {s += $NF} END {printf "%d\n", s}'; }

# Warm-up: pools filled, caches and metric handles made.
load() { # seconds
  if ((H2)); then
    h2load -t1 -c2 -m"$CONNS" -D"$1" "http://127.0.0.1:$PORT/users/1"
  else
    wrk -t1 -c"$CONNS" -d"${1}s" "http://127.0.0.1:$PORT/users/1"
  fi
}
load 2 >/dev/null
before=$(served)
callgrind_control -i on "$TAPPER_PID" >/dev/null 2>&1
load "$DURATION" >"$WORK/wrk.txt"
callgrind_control -i off "$TAPPER_PID" >/dev/null 2>&1
after=$(served)
# The metrics request in the window is counted in the instructions, not in the requests: one
# locally answered request among thousands.
requests=$((after - before))
kill -TERM "$TAPPER_PID"
wait "$TAPPER_PID" 2>/dev/null || true
# One profile per thread; a profile's total is its "totals:" line (its "summary:" line says 0
# when instrumentation started off). The I/O thread's is the largest: only it is counted, so the other threads' work (health
# probes, discovery, the embedded registry), which goes by time and not by request, cannot
# make a slower run look costlier per request. The whole process's total is printed too.
thread_totals=$(for f in "$WORK"/callgrind.out*; do awk '/^totals:/ {print $2; exit}' "$f"; done)
total=$(sort -n <<<"$thread_totals" | tail -1)
all=$(awk '{s += $1} END {printf "%d\n", s}' <<<"$thread_totals")

[ "$requests" -gt 0 ] || { echo "no requests were served" >&2; exit 1; }
if [ -n "${CALLGRIND_OUT:-}" ]; then cp "$(grep -l "^totals: $total\$" "$WORK"/callgrind.out* | head -1)" "$CALLGRIND_OUT"; fi
if [ -n "${CALLGRIND_DIR:-}" ]; then mkdir -p "$CALLGRIND_DIR" && cp "$WORK"/callgrind.out* "$CALLGRIND_DIR"/; fi
awk -v t="$total" -v a="$all" -v n="$requests" \
  'BEGIN { printf "%.1fk instructions/request on the I/O thread (%d requests; %.1fk with all threads)\n", t / n / 1000, n, a / n / 1000 }'
