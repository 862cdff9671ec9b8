#!/usr/bin/env bash
# How long `tapper status` takes against a local gateway (release build, 127.0.0.1 only):
# 100 runs of `tapper status --json` (the whole process: start, ask the gateway, print), with
# 20 services of 3 instances registered. Prints the median and the 95th percentile.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The release binary as shipped: Swift runtime and Foundation linked in (see README).
TAPPER=$(scripts/build-release)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GW=$(free_port); REG=$(free_port)
"$TAPPER" gateway serve --port "$GW" --registry-port "$REG" --no-access-log --no-health-checks --log-level warning & PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
until curl -fs -o /dev/null "http://127.0.0.1:$REG/v1/health"; do sleep 0.05; done
for s in $(seq 1 20); do for i in 1 2 3; do
  "$TAPPER" service register "svc$s" --url "http://127.0.0.1:$((20000 + s * 10 + i))" --route "GET /svc$s/{id}" --ttl 600 --registry "http://127.0.0.1:$REG" >/dev/null
done; done
export TAPPER_GATEWAY_URL="http://127.0.0.1:$GW" TAPPER_REGISTRY_URL="http://127.0.0.1:$REG"
"$TAPPER" status --json >/dev/null
times=()
for _ in $(seq 100); do
  t0=$(date +%s%N); "$TAPPER" status --json >/dev/null; t1=$(date +%s%N)
  times+=($(( (t1 - t0) / 1000 )))
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END { printf "tapper status --json, 100 runs, 20 services x 3 instances: median %.1f ms, p95 %.1f ms, max %.1f ms\n", a[int(NR*0.5)]/1000, a[int(NR*0.95)]/1000, a[NR]/1000 }'
# The floor: the same process doing nothing but start and print its version.
vtimes=()
for _ in $(seq 100); do
  t0=$(date +%s%N); "$TAPPER" --version >/dev/null; t1=$(date +%s%N)
  vtimes+=($(( (t1 - t0) / 1000 )))
done
printf '%s\n' "${vtimes[@]}" | sort -n | awk '{a[NR]=$1} END { printf "tapper --version (process start floor), 100 runs: median %.1f ms, p95 %.1f ms\n", a[int(NR*0.5)]/1000, a[int(NR*0.95)]/1000 }'
