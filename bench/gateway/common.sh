# What bench/gateway/run.sh and bench/gateway/replicas.sh share; sourced, not run.
# Needs ROOT (the repository). Defines ANTEROOM, BENCH, WORK, started (pids stopped on exit), and the helpers below.

say() { printf '== %s\n' "$*" >&2; }

# Installs the Debian packages named that this machine lacks; their own services must not start (nginx would take
# port 80, redis-server 6379): only what the benchmark starts itself runs.
need_packages() { # package:command ...
  local missing=() item
  for item in "$@"; do
    command -v "${item#*:}" >/dev/null 2>&1 || [[ -x /usr/sbin/${item#*:} ]] || missing+=("${item%%:*}")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]} with apt-get"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  local policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if ((policy_added)); then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi
}

build_release() {
  say "building Anteroom and gateway-bench in Release"
  dotnet build "$ROOT/src/Anteroom/Anteroom.csproj" -c Release --nologo -v q >&2
  dotnet build "$ROOT/bench/Anteroom.GatewayBench/Anteroom.GatewayBench.csproj" -c Release --nologo -v q >&2
  ANTEROOM="$ROOT/src/Anteroom/bin/Release/net10.0/anteroom"
  BENCH="$ROOT/bench/Anteroom.GatewayBench/bin/Release/net10.0/gateway-bench"
}

# A temporary working directory, removed on exit with everything started in it stopped (BENCH_KEEP=1 keeps it).
make_workdir() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/anteroom-gateway-bench.XXXXXX")
  chmod 755 "$WORK"
  started=()
  trap cleanup EXIT
}
cleanup() {
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then say "logs kept in $WORK"; else rm -rf "$WORK"; fi
}

# The zero-delay non-streaming upstream: every answer exactly 16 tokens (drawn within ±50% of 32, held to the
# request's max_tokens of 16). Sets SIM_PID.
start_simulator() { # port
  "$ANTEROOM" simulate --urls "http://127.0.0.1:$1" --models fixed --parallel 1000 --max-queue 1000 \
    --ttft-ms 0 --tokens-per-second 1000000000 --output-tokens 32 >"$WORK/simulator.log" 2>&1 &
  SIM_PID=$!
  started+=("$SIM_PID")
}

write_body() {
  BODY="$WORK/body.json"
  printf '%s' '{"model":"fixed","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}' >"$BODY"
}

ready() { # url, model: one answer with 200 within 60 s
  local code
  for _ in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
      -d "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":16}" "$1/v1/chat/completions" || true)
    [[ $code == 200 ]] && return 0
    sleep 0.5
  done
  say "no answer from $1 (see the logs in $WORK)"; BENCH_KEEP=1; exit 1
}

TICKS=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of the given processes, in clock ticks
  local total=0 pid rest
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    # Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    rest=$(sed 's/^.*) //' "/proc/$pid/stat")
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
per() { # ticks count decimals: CPU microseconds per item
  awk -v t="$1" -v n="$2" -v hz="$TICKS" -v d="$3" 'BEGIN { if (n) printf "%.*f", d, t * 1000000 / hz / n; else print "-" }'
}
load1() { cut -d' ' -f1 /proc/loadavg; }

# From a hey report: successful answers, and "p50 / p99 ms, rate/s, N errors" (errors: non-200 answers and failures).
hey_ok() { awk '/^[ \t]*\[200\]/ { n += $2 } END { print n + 0 }' "$1"; }
hey_line() {
  local ok total errors p50 p99 rps
  ok=$(hey_ok "$1")
  total=$(awk '/^[ \t]*\[[0-9]+\][ \t]+[0-9]+ responses/ { n += $2 } END { print n + 0 }' "$1")
  errors=$(awk '/^Error distribution:/ { e = 1; next } e && /^[ \t]*\[[0-9]+\]/ { gsub(/[\[\]]/, "", $1); n += $1 } END { print n + 0 }' "$1")
  p50=$(awk '/ 50% in / { printf "%.1f", $3 * 1000 }' "$1")
  p99=$(awk '/ 99% in / { printf "%.1f", $3 * 1000 }' "$1")
  rps=$(awk '/Requests\/sec:/ { printf "%.0f", $2 }' "$1")
  echo "$p50 / $p99 ms, $rps/s, $((total - ok + errors)) errors"
}

# hey holds a rate with -q, which is per worker: CONNECTIONS workers at RATE/CONNECTIONS each.
hey_at() { # url rate seconds connections
  local q
  q=$(awk -v r="$2" -v c="$4" 'BEGIN { printf "%g", r / c }')
  hey -z "$3s" -c "$4" -q "$q" -t 10 -m POST -T application/json -D "$BODY" "$1/v1/chat/completions"
}
