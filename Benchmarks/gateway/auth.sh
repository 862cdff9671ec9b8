#!/usr/bin/env bash
# What gateway authentication costs per request: one tapper (--threads 1, release) per mode —
# no auth, --auth api-key, --auth jwt with HS256, RS256 and ES256 keys — in ONE run on 127.0.0.1,
# the same nginx `return 200` backend behind each. wrk (pinned to CPU 0) sends a valid credential
# on every request; tapper and the backend share CPU 1. Repetitions alternate between modes.
#
# Usage: Benchmarks/gateway/auth.sh [--duration 5] [--reps 3] [--conns 64]
# Prints req/s, p99 and tapper's CPU µs per request for each mode, and each mode's CPU cost
# relative to no auth.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=5
REPS=3
CONNS=64
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

. Benchmarks/lib.sh
bench_install wrk nginx openssl
bench_tapper
bench_workdir tapper-auth-bench

# Keys and one valid credential per mode (tokens valid for a day).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.key" 2>/dev/null
openssl pkey -in "$WORK/rsa.key" -pubout -out "$WORK/rsa.pub"
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/ec.key" 2>/dev/null
openssl ec -in "$WORK/ec.key" -pubout -out "$WORK/ec.pub" 2>/dev/null
openssl rand -hex 32 > "$WORK/hs256.secret"
API_KEY=$(openssl rand -hex 24)
echo "bench:$API_KEY" > "$WORK/api-keys"
python3 - "$WORK" <<'PY'
import base64, hashlib, hmac, json, subprocess, sys, time
work = sys.argv[1]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def token(alg, sign):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "bench", "exp": int(time.time()) + 86400}).encode())
    return f"{head}.{body}.{b64(sign(f'{head}.{body}'.encode()))}"
def openssl_sign(key, data):
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=data, capture_output=True, check=True).stdout
def der_to_raw(der):  # ECDSA-Sig-Value (DER) -> r || s, 32 bytes each (JWS)
    def read(i):
        assert der[i] == 0x02
        n = der[i + 1]
        return int.from_bytes(der[i + 2:i + 2 + n], "big"), i + 2 + n
    r, i = read(2)
    s, _ = read(i)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
secret = open(f"{work}/hs256.secret", "rb").read().strip()
tokens = {
    "hs256": token("HS256", lambda d: hmac.new(secret, d, hashlib.sha256).digest()),
    "rs256": token("RS256", lambda d: openssl_sign(f"{work}/rsa.key", d)),
    "es256": token("ES256", lambda d: der_to_raw(openssl_sign(f"{work}/ec.key", d))),
}
for name, t in tokens.items():
    open(f"{work}/{name}.token", "w").write(t)
PY

B1=$(free_port)
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$B1; location / { default_type application/json; return 200 '{"user_id": 1, "name": "Jane Doe"}'; } } }
CONF
taskset -c $SERVERCPU nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' -e "$WORK/nginx/error.log" & PIDS+=($!)
wait_http "http://127.0.0.1:$B1/"

MODES=(none api-key jwt-hs256 jwt-rs256 jwt-es256)
declare -A PORT PID HEADER
for mode in "${MODES[@]}"; do
  port=$(free_port); reg=$(free_port)
  case $mode in
    none) args=(); HEADER[$mode]="" ;;
    api-key) args=(--auth api-key --api-keys-file "$WORK/api-keys"); HEADER[$mode]="X-API-Key: $API_KEY" ;;
    jwt-hs256) args=(--auth jwt --jwt-key-file "$WORK/hs256.secret"); HEADER[$mode]="Authorization: Bearer $(cat "$WORK/hs256.token")" ;;
    jwt-rs256) args=(--auth jwt --jwt-key-file "$WORK/rsa.pub"); HEADER[$mode]="Authorization: Bearer $(cat "$WORK/rs256.token")" ;;
    jwt-es256) args=(--auth jwt --jwt-key-file "$WORK/ec.pub"); HEADER[$mode]="Authorization: Bearer $(cat "$WORK/es256.token")" ;;
  esac
  taskset -c $SERVERCPU "$TAPPER" gateway serve --port "$port" --registry-port "$reg" --threads 1 --no-access-log --log-level warning \
    --admin-port 0 "${args[@]}" > "$WORK/tapper-$mode.log" 2>&1 & PIDS+=($!)
  PID[$mode]=$!
  PORT[$mode]=$port
  wait_http "http://127.0.0.1:$reg/v1/health"
  "$TAPPER" service register users --url "http://127.0.0.1:$B1" --route 'GET /users/{user_id}' --ttl 86400 --registry "http://127.0.0.1:$reg" >/dev/null
  wait_http "http://127.0.0.1:$port/users/1" "${HEADER[$mode]}"
done

declare -A RPS P99 CPU
run_one() { # mode
  local mode=$1 before after out reqs non2xx
  local hdr=()
  [ -z "${HEADER[$mode]}" ] || hdr=(-H "${HEADER[$mode]}")
  before=$(cpu_ticks "${PID[$mode]}")
  out=$(taskset -c $LOADCPU wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${hdr[@]}" "http://127.0.0.1:${PORT[$mode]}/users/1")
  after=$(cpu_ticks "${PID[$mode]}")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  if [ -n "$non2xx" ]; then echo "ERROR: $mode had $non2xx non-2xx responses (credentials refused?)" >&2; exit 1; fi
  RPS[$mode]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
  P99[$mode]+="$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")") "
  CPU[$mode]+="$(awk -v t=$((after - before)) -v hz="$TICK" -v r="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / r }') "
}

# Warm-up (also resolves each JWT key once).
SAVED=$DURATION; DURATION=1
for mode in "${MODES[@]}"; do run_one "$mode"; done
DURATION=$SAVED; RPS=(); P99=(); CPU=()
for r in $(seq "$REPS"); do
  echo "repetition $r/$REPS" >&2
  for mode in "${MODES[@]}"; do run_one "$mode"; done
done

echo
echo "Gateway auth cost: $(nproc) CPUs, wrk -t1 -c$CONNS on CPU $LOADCPU, tapper --threads 1 and nginx on CPU $SERVERCPU, ${DURATION}s x $REPS reps (medians)"
base=$(echo "${CPU[none]}" | median)
printf "%-10s %12s %10s %12s %14s\n" mode "req/s" "p99 ms" "CPU us/req" "CPU vs none"
for mode in "${MODES[@]}"; do
  cpu=$(echo "${CPU[$mode]}" | median)
  printf "%-10s %12s %10s %12s %14s\n" "$mode" "$(echo "${RPS[$mode]}" | median)" "$(echo "${P99[$mode]}" | median)" "$cpu" \
    "$(awk -v a="$cpu" -v b="$base" 'BEGIN { printf "%.2f", a / b }')"
done
