#!/usr/bin/env bash
# Gateway data-path benchmark: tapper vs nginx vs HAProxy, in ONE run, on 127.0.0.1.
#
# Backend: two nginx instances answering `return 200` with a small JSON body.
# Proxies, each with ONE worker/thread (what tapper uses here, --threads 1):
#   nginx    proxy_pass to an upstream block with keepalive 1024, 1 worker, access_log off
#   haproxy  nbthread 1, http-reuse always, option http-keep-alive
#   tapper   gateway serve --threads 1 --no-access-log (embedded registry)
# nginx and HAProxy are configured to do the per-request work tapper's proxy contract always
# does (DESIGN.md, Proxying): set X-Forwarded-For/-Proto/-Host, keep or generate X-Request-ID
# and return it in the response. The same two servers also run with bare configs (plain
# proxy_pass / backend, no header work: rows nginx-bare and haproxy-bare) so the cost of that
# work is visible; the bar is judged against the equivalent configs.
# wrk runs pinned to CPU 0; proxies and backends share CPU 1 (taskset), so the proxy's CPU
# cost is what limits throughput. Repeats alternate between proxies so drift hits all alike.
#
# Usage: Benchmarks/gateway/run.sh [--duration 10] [--reps 3] [--conns "64 256"] [--no-bare] [--floor] [--tls|--h2] [--h2c-upstream]
#                                   [--with "GATEWAY OPTIONS"] [--only-with] [--otlp-sink]
#   --tls    the proxies' client side is HTTPS (keep-alive, TLS 1.3, one ECDSA P-256 certificate
#            for all): nginx `listen ssl`, HAProxy `bind ssl crt`, tapper --tls-port; the
#            backends stay plain HTTP. nginx, HAProxy and tapper all use the system's OpenSSL.
#   --h2     like --tls, but the clients speak HTTP/2 (ALPN h2): h2load (nghttp2-client) with 4
#            connections carrying conns/4 concurrent streams each, instead of wrk; nginx
#            `listen ssl http2`, HAProxy `alpn h2,http/1.1`. h2load reports no percentiles:
#            the latency columns are then its mean and max.
#   --h2c-upstream  the proxies speak HTTP/2 with prior knowledge to the backends (the same nginx
#            servers, `listen ... http2` on two more ports): tapper registers them with
#            `--protocol h2c`, HAProxy's servers get `proto h2`. nginx cannot proxy to an h2
#            upstream, so its rows keep HTTP/1.1 backends: compare tapper with HAProxy here.
#   --floor  also measures Benchmarks/gateway/floor (an experiment, not product code: the same
#            parser and route table on a bare epoll loop without SwiftNIO; see its main.swift)
#   --with "OPTIONS"  what a feature costs: a second tapper (row tapper+) runs with these gateway
#            options, each repetition right after the plain one, and the tapper+/tapper ratios of
#            req/s, p99 and CPU per request are printed (e.g. --with "--rate-limit 1000000000/s").
#            The two take turns going first (tapper, tapper+; then tapper+, tapper; ...), so a
#            machine that slows or speeds up over a run favours neither, and the cost is the
#            median of the repetitions' ratios (each pair ran back to back: the host's noise,
#            which moves the rates of all rows by 10-20% from minute to minute here, mostly
#            cancels out of a pair's ratio but not out of the ratio of two medians, also printed).
#   --only-with  with --with: only the tapper and tapper+ rows (no direct, nginx or HAProxy),
#            so more repetitions fit in the same time; the bar against nginx is not judged.
#   --otlp-sink  starts Benchmarks/gateway/otlp-sink.py (a receiver that answers every export at
#            once) on the load's CPU, at http://127.0.0.1:19098, for --with "--otlp-endpoint
#            http://127.0.0.1:19098" (what tracing at 100% sampling costs).
#        (TAPPER_BIN=path measures that tapper binary instead of building the release one)
#        (TAPPER_ARGS="..." adds gateway options to the tapper row, e.g. to cost a feature)
# Prints req/s, p50, p99 per target and connection count, CPU µs per request of each proxy
# process (from /proc/PID/stat utime+stime over the run), and the tapper/nginx and
# tapper/HAProxy ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=10
REPS=3
CONNS="64 256"
BARE=1
FLOOR=0
TLS=0
H2=0
H2C_UP=0
WITH=""
ONLY_WITH=0
SINK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --no-bare) BARE=0; shift ;;
    --floor) FLOOR=1; shift ;;
    --tls) TLS=1; BARE=0; shift ;;
    --h2) TLS=1; H2=1; BARE=0; shift ;;
    --h2c-upstream) H2C_UP=1; BARE=0; shift ;;
    --with) WITH=$2; shift 2 ;;
    --only-with) ONLY_WITH=1; BARE=0; shift ;;
    --otlp-sink) SINK=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

if ((ONLY_WITH)) && [ -z "$WITH" ]; then echo "--only-with needs --with" >&2; exit 2; fi

. Benchmarks/lib.sh
bench_install wrk nginx haproxy
if ((H2)); then bench_install nghttp2-client; fi
bench_tapper
bench_workdir tapper-bench

B1=19081; B2=19082; NGINX=19090; HAPROXY=19091; TAPPER_PORT=19092; REG=19093; NGINX_BARE=19094; HAPROXY_BARE=19095; FLOOR_PORT=19096
require_free_ports $B1 $B2 $NGINX $HAPROXY $TAPPER_PORT $REG $NGINX_BARE $HAPROXY_BARE $FLOOR_PORT
# --with: the second tapper's ports; --otlp-sink: the receiver's.
TAPPER2_PORT=19099; REG2=19100; TAPPER2_TLS_PORT=19101; SINK_PORT=19098
if [ -n "$WITH" ]; then require_free_ports $TAPPER2_PORT $REG2 $TAPPER2_TLS_PORT; fi
if ((SINK)); then require_free_ports $SINK_PORT; fi
# --h2c-upstream: the same backends answer h2c (prior knowledge) on these ports too.
B1H=19083; B2H=19084
UP1=$B1; UP2=$B2; HAPROXY_PROTO=""; REGISTER_ARGS=()
if ((H2C_UP)); then
  require_free_ports $B1H $B2H
  UP1=$B1H; UP2=$B2H; HAPROXY_PROTO="proto h2"; REGISTER_ARGS=(--protocol h2c)
fi

mkdir -p "$WORK/nginx-backend" "$WORK/nginx-proxy"
# --tls: the proxies' listeners speak HTTPS; tapper keeps its plain port (for set-up) and adds one.
SCHEME=http; NGINX_SSL=""; HAPROXY_SSL=""; TAPPER_TLS_ARGS=(); TAPPER2_TLS_ARGS=(); TAPPER_TLS_PORT=19097; WGET_K=""
if ((TLS)); then
  require_free_ports $TAPPER_TLS_PORT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
  cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/haproxy.pem"
  SCHEME=https
  NGINX_SSL="ssl; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; ssl_protocols TLSv1.2 TLSv1.3"
  HAPROXY_SSL="ssl crt $WORK/haproxy.pem alpn http/1.1"
  if ((H2)); then NGINX_SSL="ssl http2; ${NGINX_SSL#ssl; }"; HAPROXY_SSL="ssl crt $WORK/haproxy.pem alpn h2,http/1.1"; fi
  TAPPER_TLS_ARGS=(--tls-port $TAPPER_TLS_PORT --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
  TAPPER2_TLS_ARGS=(--tls-port $TAPPER2_TLS_PORT --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
  WGET_K="-k"
fi
cat > "$WORK/nginx-backend/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx-backend/nginx.pid;
error_log $WORK/nginx-backend/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$B1; location / { default_type application/json; return 200 '{"user_id": 1, "name": "Jane Doe"}'; } }
  server { listen 127.0.0.1:$B2; location / { default_type application/json; return 200 '{"user_id": 1, "name": "Jane Doe"}'; } }
  http2_max_concurrent_streams 1024;
  server { listen 127.0.0.1:$B1H http2; location / { default_type application/json; return 200 '{"user_id": 1, "name": "Jane Doe"}'; } }
  server { listen 127.0.0.1:$B2H http2; location / { default_type application/json; return 200 '{"user_id": 1, "name": "Jane Doe"}'; } }
}
CONF
# keepalive: idle upstream connections each worker keeps; at least the client connection count,
# or nginx closes and reopens upstream connections under load.
cat > "$WORK/nginx-proxy/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx-proxy/nginx.pid;
error_log $WORK/nginx-proxy/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 1024; }
  # X-Request-ID: the client's, else a generated one.
  map \$http_x_request_id \$rid { default \$http_x_request_id; "" \$request_id; }
  server {
    listen 127.0.0.1:$NGINX $NGINX_SSL;
    location / {
      proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Request-ID \$rid;
      add_header X-Request-ID \$rid always;
    }
  }
  server {
    listen 127.0.0.1:$NGINX_BARE;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
cat > "$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAPROXY $HAPROXY_SSL
  unique-id-format %{+X}o%ci%cp%fp%Ts%rt%pid
  http-request set-header X-Request-ID %[unique-id] unless { req.hdr(x-request-id) -m found }
  http-request set-var(txn.rid) req.hdr(x-request-id)
  http-request set-header X-Forwarded-For %[src]
  http-request set-header X-Forwarded-Proto $SCHEME
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-response set-header X-Request-ID %[var(txn.rid)]
  default_backend be
frontend fe-bare
  bind 127.0.0.1:$HAPROXY_BARE
  default_backend be
backend be
  balance roundrobin
  server b1 127.0.0.1:$UP1 $HAPROXY_PROTO
  server b2 127.0.0.1:$UP2 $HAPROXY_PROTO
CONF

taskset -c $SERVERCPU nginx -c "$WORK/nginx-backend/nginx.conf" -g 'daemon off;' -e "$WORK/nginx-backend/error.log" & PIDS+=($!)
taskset -c $SERVERCPU nginx -c "$WORK/nginx-proxy/nginx.conf" -g 'daemon off;' -e "$WORK/nginx-proxy/error.log" & PIDS+=($!); NGINX_PID=$!
taskset -c $SERVERCPU haproxy -f "$WORK/haproxy.cfg" -db > "$WORK/haproxy.log" 2>&1 & PIDS+=($!); HAPROXY_PID=$!
taskset -c $SERVERCPU "$TAPPER" gateway serve --port $TAPPER_PORT --registry-port $REG --threads 1 --no-access-log --log-level warning "${TAPPER_TLS_ARGS[@]}" ${TAPPER_ARGS:-} > "$WORK/tapper.log" 2>&1 & PIDS+=($!); TAPPER_PID=$!
if ((SINK)); then
  taskset -c $LOADCPU python3 Benchmarks/gateway/otlp-sink.py $SINK_PORT > "$WORK/otlp-sink.log" 2>&1 & PIDS+=($!)
fi
if [ -n "$WITH" ]; then
  # shellcheck disable=SC2086 # the options are words
  taskset -c $SERVERCPU "$TAPPER" gateway serve --port $TAPPER2_PORT --registry-port $REG2 --threads 1 --no-access-log --log-level warning "${TAPPER2_TLS_ARGS[@]}" ${TAPPER_ARGS:-} $WITH > "$WORK/tapper2.log" 2>&1 & PIDS+=($!); TAPPER2_PID=$!
fi

if ((FLOOR)); then
  echo "building the floor experiment" >&2
  # One module named TapperCore, so HeaderRules.swift's `import TapperCore` is its own module.
  swiftc -O -wmo -enforce-exclusivity=unchecked -module-name TapperCore -import-objc-header Benchmarks/gateway/floor/shim.h \
    $(find Sources/TapperCore -name '*.swift') Sources/TapperGateway/Proxy/HeaderRules.swift Benchmarks/gateway/floor/main.swift \
    -o "$WORK/floor" 2>"$WORK/floor-build.log" \
    || { cat "$WORK/floor-build.log" >&2; exit 1; }
  taskset -c $SERVERCPU "$WORK/floor" $FLOOR_PORT $B1 $B2 & PIDS+=($!); FLOOR_PID=$!
fi
wait_http "http://127.0.0.1:$B1/"
wait_http "http://127.0.0.1:$REG/v1/health"
REGS=$REG
if [ -n "$WITH" ]; then wait_http "http://127.0.0.1:$REG2/v1/health"; REGS="$REG $REG2"; fi
for r in $REGS; do
  for b in $UP1 $UP2; do
    "$TAPPER" service register users --url "http://127.0.0.1:$b" --route 'GET /users/{user_id}' --ttl 86400 --registry "http://127.0.0.1:$r" "${REGISTER_ARGS[@]}" >/dev/null
  done
done
wait_http "http://127.0.0.1:$TAPPER_PORT/users/1"
if ((TLS)); then TAPPER_PORT=$TAPPER_TLS_PORT; fi
wait_http "$SCHEME://127.0.0.1:$TAPPER_PORT/users/1"
if [ -n "$WITH" ]; then
  wait_http "http://127.0.0.1:$TAPPER2_PORT/users/1"
  TAPPER2_PLAIN_PORT=$TAPPER2_PORT
  if ((TLS)); then TAPPER2_PORT=$TAPPER2_TLS_PORT; fi
  wait_http "$SCHEME://127.0.0.1:$TAPPER2_PORT/users/1"
fi
if ((SINK)); then wait_http "http://127.0.0.1:$SINK_PORT/"; fi
wait_http "$SCHEME://127.0.0.1:$NGINX/users/1"
wait_http "$SCHEME://127.0.0.1:$HAPROXY/users/1"
wait_http "http://127.0.0.1:$NGINX_BARE/users/1"
wait_http "http://127.0.0.1:$HAPROXY_BARE/users/1"
# The equivalent configs really do the header work (checked, not assumed).
for p in $NGINX $HAPROXY $TAPPER_PORT; do
  curl -fsi $WGET_K "$SCHEME://127.0.0.1:$p/users/1" | grep -qi '^x-request-id: .' || { echo "port $p returned no X-Request-ID" >&2; exit 1; }
done

# nginx runs a master and a worker: measure the worker.
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -1)

declare -A RPS P50 P99 CPU
run_one() { # name port pid conns
  local name=$1 port=$2 pid=$3 c=$4
  local before after out
  before=${pid:+$(cpu_ticks "$pid")}
  local scheme=$SCHEME
  if [ "$name" = direct ]; then scheme=http; fi
  local rps p50 p99 reqs non2xx
  if ((H2)) && [ "$name" != direct ]; then
    out=$(taskset -c $LOADCPU h2load -t1 -c4 -m$((c / 4)) -D"$DURATION" "$scheme://127.0.0.1:$port/users/1")
    after=${pid:+$(cpu_ticks "$pid")}
    rps=$(awk '/^finished in/ {print $4}' <<<"$out")
    reqs=$(awk '/^requests:/ {print $8}' <<<"$out")
    p50=$(awk '/^time for request:/ {print $6}' <<<"$out")
    p99=$(awk '/^time for request:/ {print $5}' <<<"$out")
    non2xx=$(awk '/^status codes:/ {print $5 + $7 + $9}' <<<"$out")
    [ "$non2xx" = 0 ] && non2xx=""
    if awk '/^requests:/ {exit !($10 > 0 || $12 > 0)}' <<<"$out"; then echo "WARNING: $name had failed requests: $(grep '^requests:' <<<"$out")" >&2; fi
  else
  out=$(taskset -c $LOADCPU wrk -t1 -c"$c" -d"${DURATION}s" --latency "$scheme://127.0.0.1:$port/users/1")
  after=${pid:+$(cpu_ticks "$pid")}
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  fi
  if [ -n "$non2xx" ]; then echo "WARNING: $name had $non2xx non-2xx responses" >&2; fi
  RPS[$name,$c]+="$rps "
  P50[$name,$c]+="$(to_ms "$p50") "
  P99[$name,$c]+="$(to_ms "$p99") "
  if [ -n "$pid" ]; then
    CPU[$name,$c]+="$(awk -v t=$((after - before)) -v hz="$TICK" -v r="$reqs" 'BEGIN { printf "%.1f", t / hz * 1e6 / r }') "
  fi
}

# Warm-up.
if ((FLOOR)); then wait_http "http://127.0.0.1:$FLOOR_PORT/users/1"; fi
for p in $TAPPER_PORT $( [ -n "$WITH" ] && echo $TAPPER2_PORT) $NGINX $HAPROXY $( ((BARE)) && echo $NGINX_BARE $HAPROXY_BARE) $( ((FLOOR)) && echo $FLOOR_PORT); do taskset -c $LOADCPU wrk -t1 -c64 -d2s "$SCHEME://127.0.0.1:$p/users/1" >/dev/null; done

for c in $CONNS; do
  for r in $(seq "$REPS"); do
    echo "connections $c, repetition $r/$REPS" >&2
    if ! ((ONLY_WITH)); then
      run_one direct $B1 "" "$c"
      run_one nginx $NGINX "$NGINX_WORKER" "$c"
      run_one haproxy $HAPROXY "$HAPROXY_PID" "$c"
    fi
    if ((BARE)); then
      run_one nginx-bare $NGINX_BARE "$NGINX_WORKER" "$c"
      run_one haproxy-bare $HAPROXY_BARE "$HAPROXY_PID" "$c"
    fi
    if [ -n "$WITH" ] && ((r % 2 == 0)); then
      run_one tapper+ $TAPPER2_PORT "$TAPPER2_PID" "$c"
      run_one tapper $TAPPER_PORT "$TAPPER_PID" "$c"
    else
      run_one tapper $TAPPER_PORT "$TAPPER_PID" "$c"
      if [ -n "$WITH" ]; then run_one tapper+ $TAPPER2_PORT "$TAPPER2_PID" "$c"; fi
    fi
    if ((FLOOR)); then run_one floor $FLOOR_PORT "$FLOOR_PID" "$c"; fi
  done
done

echo
echo "Gateway benchmark$( ((TLS)) && echo " over HTTPS (client side)")$( ((H2)) && echo ", HTTP/2 by h2load -c4 -m(conns/4) (latency columns: mean and max)"): $(nproc) CPUs, wrk -t1 on CPU $LOADCPU, servers on CPU $SERVERCPU, ${DURATION}s x $REPS reps per cell (medians)"
TARGETS="direct nginx haproxy tapper"
if ((BARE)); then TARGETS="direct nginx haproxy nginx-bare haproxy-bare tapper"; fi
if ((ONLY_WITH)); then TARGETS="tapper"; fi
if [ -n "$WITH" ]; then TARGETS="$TARGETS tapper+"; fi
if ((FLOOR)); then TARGETS="$TARGETS floor"; fi
printf "%-12s %6s %12s %10s %10s %12s\n" target conns "req/s" "p50 ms" "p99 ms" "CPU us/req"
for c in $CONNS; do
  for name in $TARGETS; do
    rps=$(echo "${RPS[$name,$c]}" | median)
    p50=$(echo "${P50[$name,$c]}" | median)
    p99=$(echo "${P99[$name,$c]}" | median)
    cpu=$( [ -n "${CPU[$name,$c]:-}" ] && echo "${CPU[$name,$c]}" | median || echo "-")
    printf "%-12s %6s %12s %10s %10s %12s\n" "$name" "$c" "$rps" "$p50" "$p99" "$cpu"
  done
done
echo
if ! ((ONLY_WITH)); then
for c in $CONNS; do
  t=$(echo "${RPS[tapper,$c]}" | median); n=$(echo "${RPS[nginx,$c]}" | median); h=$(echo "${RPS[haproxy,$c]}" | median)
  tp=$(echo "${P99[tapper,$c]}" | median); np=$(echo "${P99[nginx,$c]}" | median); hp=$(echo "${P99[haproxy,$c]}" | median)
  tc=$(echo "${CPU[tapper,$c]}" | median); nc=$(echo "${CPU[nginx,$c]}" | median); hc=$(echo "${CPU[haproxy,$c]}" | median)
  awk -v c="$c" -v t="$t" -v n="$n" -v h="$h" -v tp="$tp" -v np="$np" -v hp="$hp" -v tc="$tc" -v nc="$nc" -v hc="$hc" 'BEGIN {
    printf "c=%s  req/s tapper/nginx %.2f  tapper/haproxy %.2f | p99 tapper/nginx %.2f  tapper/haproxy %.2f | CPU/req tapper/nginx %.2f  tapper/haproxy %.2f\n", c, t/n, t/h, tp/np, tp/hp, tc/nc, tc/hc }'
done
if ((BARE)); then
  for c in $CONNS; do
    t=$(echo "${RPS[tapper,$c]}" | median); n=$(echo "${RPS[nginx-bare,$c]}" | median); h=$(echo "${RPS[haproxy-bare,$c]}" | median)
    tc=$(echo "${CPU[tapper,$c]}" | median); nc=$(echo "${CPU[nginx-bare,$c]}" | median); hc=$(echo "${CPU[haproxy-bare,$c]}" | median)
    awk -v c="$c" -v t="$t" -v n="$n" -v h="$h" -v tc="$tc" -v nc="$nc" -v hc="$hc" 'BEGIN {
      printf "c=%s  (bare configs) req/s tapper/nginx-bare %.2f  tapper/haproxy-bare %.2f | CPU/req tapper/nginx-bare %.2f  tapper/haproxy-bare %.2f\n", c, t/n, t/h, tc/nc, tc/hc }'
  done
fi
fi
if [ -n "$WITH" ]; then
  echo "tapper+ = tapper $WITH"
  # With tracing on: what the exporter did (a cost measured while spans were dropped would be
  # no cost of tracing).
  curl -fs "http://127.0.0.1:${TAPPER2_PLAIN_PORT}/_tapper/status" | python3 -c '
import json, sys
t = json.load(sys.stdin).get("gateway", {}).get("tracing")
if t: print("tapper+ tracing: exported %d spans, dropped %d, failed %d" % (t["exported"], t["dropped"], t["failed"]))' || true
  # Per repetition: tapper+/tapper of req/s and of CPU per request (the pair ran back to back).
  pair_ratios() { # METRIC-ARRAY-NAME CONNS
    local -n m=$1
    local -a a b
    read -ra a <<<"${m[tapper,$2]}"; read -ra b <<<"${m[tapper+,$2]}"
    for i in "${!a[@]}"; do awk -v x="${b[$i]}" -v y="${a[$i]}" 'BEGIN { printf "%.3f ", x/y }'; done
  }
  for c in $CONNS; do
    rr=$(pair_ratios RPS "$c"); cr=$(pair_ratios CPU "$c")
    awk -v c="$c" -v r="$(echo "$rr" | median)" -v cpu="$(echo "$cr" | median)" -v rr="$rr" -v cr="$cr" \
        -v t="$(echo "${RPS[tapper,$c]}" | median)" -v w="$(echo "${RPS[tapper+,$c]}" | median)" \
        -v tp="$(echo "${P99[tapper,$c]}" | median)" -v wp="$(echo "${P99[tapper+,$c]}" | median)" 'BEGIN {
      printf "c=%s  tapper+/tapper req/s %.3f (%+.1f%%, median of the repetitions: %s) | CPU/req %.3f (%s) | ratio of medians: req/s %.3f, p99 %.2f\n", c, r, (r - 1) * 100, rr, cpu, cr, w/t, wp/tp }'
  done
fi
if ((ONLY_WITH)); then exit 0; fi
# Each repetition on its own (tapper and nginx ran back to back in it): how the medians came to be.
for c in $CONNS; do
  read -ra tr <<<"${RPS[tapper,$c]}"; read -ra nr <<<"${RPS[nginx,$c]}"
  read -ra tp <<<"${P99[tapper,$c]}"; read -ra np <<<"${P99[nginx,$c]}"
  read -ra tc <<<"${CPU[tapper,$c]}"; read -ra nc <<<"${CPU[nginx,$c]}"
  line="c=$c  per repetition, tapper/nginx req/s p99 CPU:"; won=0
  for i in "${!tr[@]}"; do
    line+=$(awk -v a="${tr[$i]}" -v b="${nr[$i]}" -v c="${tp[$i]}" -v d="${np[$i]}" -v e="${tc[$i]}" -v f="${nc[$i]}" \
      'BEGIN { printf "  %.2f %.2f %.2f", a/b, c/d, e/f }')
    awk -v a="${tr[$i]}" -v b="${nr[$i]}" -v c="${tp[$i]}" -v d="${np[$i]}" -v e="${tc[$i]}" -v f="${nc[$i]}" \
      'BEGIN { exit !(a >= b && c <= d && e <= f) }' && won=$((won + 1))
  done
  echo "$line | all three met in $won of ${#tr[@]}"
done
# The issue's bar, against the equivalent nginx config: req/s >=, p99 <=, CPU/req <= at every count.
met=1
for c in $CONNS; do
  awk -v t="$(echo "${RPS[tapper,$c]}" | median)" -v n="$(echo "${RPS[nginx,$c]}" | median)" \
      -v tp="$(echo "${P99[tapper,$c]}" | median)" -v np="$(echo "${P99[nginx,$c]}" | median)" \
      -v tc="$(echo "${CPU[tapper,$c]}" | median)" -v nc="$(echo "${CPU[nginx,$c]}" | median)" \
      'BEGIN { exit !(t >= n && tp <= np && tc <= nc) }' || met=0
done
echo "bar (tapper req/s >= nginx, p99 <= nginx, CPU/req <= nginx at c=${CONNS// /,}): $( ((met)) && echo met || echo NOT met)"
