# Shared by the gateway benchmark scripts (source it): package installs, the release binary,
# the work folder and its processes, waiting for servers, CPU accounting and medians.
# Loopback only; every helper is bounded in time.

# bench_install CMD... — apt-installs the Debian packages of the same names that are missing.
bench_install() {
  local need=() c
  for c in "$@"; do command -v "$c" >/dev/null || need+=("$c"); done
  if ((${#need[@]})); then
    echo "installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

# bench_tapper — sets TAPPER: $TAPPER_BIN when given (another build to measure), else the
# release binary as shipped (scripts/build-release), built now.
bench_tapper() {
  if [ -n "${TAPPER_BIN:-}" ]; then
    TAPPER=$TAPPER_BIN
  else
    echo "building tapper (release)" >&2
    TAPPER=$(scripts/build-release)
  fi
}

# bench_workdir NAME — sets WORK (a new temporary folder) and PIDS; on exit every process in
# PIDS is killed and WORK removed. Sets LOADCPU (wrk) and SERVERCPU (servers under test).
bench_workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
  local ncpu
  ncpu=$(nproc)
  LOADCPU=0
  SERVERCPU=$(( ncpu > 1 ? 1 : 0 ))
}

# require_free_ports PORT... — exits when one is taken: a leftover server answering there would
# be measured in place of the one this script starts.
require_free_ports() {
  local p
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "port $p on 127.0.0.1 is already in use (a leftover server?); stop it first" >&2
      exit 1
    fi
  done
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_http URL [HEADER] — polls until URL answers 2xx (20 s at most, then exits).
wait_http() {
  local deadline=$((SECONDS + 20))
  until curl -fsk -o /dev/null ${2:+-H "$2"} "$1"; do
    [ $SECONDS -lt $deadline ] || { echo "timed out waiting for $1" >&2; exit 1; }
    sleep 0.05
  done
}

# cpu_ticks PID — user + system CPU ticks of a process so far (see CLK_TCK).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# to_ms VALUE — wrk's 1.23ms / 456.78us / 1.02s as milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}

# median — of the numbers on stdin (separated by spaces or lines).
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2] + a[NR/2+1]) / 2 }'; }
