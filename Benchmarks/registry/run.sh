#!/usr/bin/env bash
# Registry benchmark (release build, 127.0.0.1 only):
#  1. blocking-query wake-up latency, p50/p99 over 300 changes (wakeup.py);
#  2. registrations per second through PUT /v1/services/…/instances/… (wrk + register.lua,
#     16 connections, 10 s, every request a new instance).
# Usage: Benchmarks/registry/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v wrk >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
# The release binary as shipped: Swift runtime and Foundation linked in (see README).
TAPPER=$(scripts/build-release)
PORT=${PORT:-19301}
"$TAPPER" registry serve --port "$PORT" --log-level warning & PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
deadline=$((SECONDS + 20))
until curl -fs -o /dev/null "http://127.0.0.1:$PORT/v1/health"; do [ $SECONDS -lt $deadline ] || exit 1; sleep 0.05; done
python3 Benchmarks/registry/wakeup.py "$PORT" 300
echo "registrations through the HTTP API (wrk -t2 -c16 -d10s, each request a new instance):"
wrk -t2 -c16 -d10s -s Benchmarks/registry/register.lua --latency "http://127.0.0.1:$PORT" | grep -E "Requests/sec|Latency|50%|99%|Non-2xx|requests in"
