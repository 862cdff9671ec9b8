#!/usr/bin/env bash
# TapperGateway (Python, the README's gateway.py under one uvicorn worker) against
# `tapper gateway serve`, in ONE run, on 127.0.0.1, through the same registry to the same backend
# (one nginx answering the Quick Start's JSON). wrk runs pinned to CPU 0; gateways and backend
# share CPU 1 (taskset), as in Benchmarks/gateway/run.sh. Prints req/s and p50/p99 per repetition
# and the medians.
#
#   Benchmarks/python-gateway/run.sh [--reps N] [--duration S] [--connections C]
#   TAPPER_BIN=.build/debug/tapper Benchmarks/python-gateway/run.sh   # measure another build
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
. Benchmarks/lib.sh

REPS=3; DURATION=10; CONNS=64
while (($#)); do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    *) echo "unknown option $1 (use --reps N, --duration S, --connections C)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-$ROOT/.venv/bin/python}
"$PY" -c 'import tapper, uvicorn, httpx' 2>/dev/null || { echo "$PY cannot import tapper, uvicorn and httpx; run scripts/test once or pip install -e 'clients/python[gateway]' uvicorn" >&2; exit 1; }

bench_install wrk nginx
bench_tapper
bench_workdir tapper-pygw

BACKEND=$(free_port); SWIFT=$(free_port); REG=$(free_port); PYGW=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND; location / { default_type application/json; return 200 '{"user_id": 1, "name": "Jane Doe"}'; } }
}
CONF
taskset -c "$SERVERCPU" nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!)
taskset -c "$SERVERCPU" "$TAPPER" gateway serve --port "$SWIFT" --registry-port "$REG" --no-access-log >"$WORK/tapper.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$REG/v1/health"
"$TAPPER" service register bench --registry "http://127.0.0.1:$REG" --url "http://127.0.0.1:$BACKEND" \
  --route 'GET /users/{user_id:int}' --health-endpoint / --ttl 86400 >/dev/null
# The Python gateway is the README's gateway.py, verbatim.
awk '/<!-- gateway: gateway.py/ {f=1; next} f && /^```python/ {p=1; next} p && /^```/ {exit} p' README.md > "$WORK/gateway.py"
(cd "$WORK" && TAPPER_REGISTRY_URL="http://127.0.0.1:$REG" exec taskset -c "$SERVERCPU" "$PY" -m uvicorn gateway:app \
  --host 127.0.0.1 --port "$PYGW" --no-access-log --log-level warning >"$WORK/pygw.log" 2>&1) & PIDS+=($!)
wait_http "http://127.0.0.1:$SWIFT/users/1"
wait_http "http://127.0.0.1:$PYGW/users/1"

run() {  # NAME PORT -> "req/s p50ms p99ms"
  local out
  out=$(taskset -c "$LOADCPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$2/users/1")
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
  [ -z "$errors" ] || echo "  $1: $errors" >&2
  echo "$rps $p50 $p99"
}

echo "tapper: $TAPPER; python: $("$PY" --version 2>&1), uvicorn 1 worker; wrk -t1 -c$CONNS -d${DURATION}s GET /users/1; $(nproc) cores"
printf '%-4s %-30s %12s %10s %10s\n' rep gateway req/s p50_ms p99_ms
declare -a swift_rps py_rps
for ((i = 1; i <= REPS; i++)); do
  read -r r a b < <(run swift "$SWIFT"); swift_rps+=("$r"); printf '%-4s %-30s %12s %10s %10s\n' "$i" "tapper gateway serve" "$r" "$a" "$b"
  read -r r a b < <(run python "$PYGW"); py_rps+=("$r"); printf '%-4s %-30s %12s %10s %10s\n' "$i" "TapperGateway (uvicorn)" "$r" "$a" "$b"
done
s=$(printf '%s\n' "${swift_rps[@]}" | median); p=$(printf '%s\n' "${py_rps[@]}" | median)
printf 'median req/s: tapper gateway serve %s, TapperGateway %s, ratio %.1fx\n' "$s" "$p" "$(awk -v s="$s" -v p="$p" 'BEGIN {print s / p}')"
