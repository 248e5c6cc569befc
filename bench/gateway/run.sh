#!/usr/bin/env bash
# The gateway benchmark, one command: bench/gateway/run.sh
#
# Starts a zero-delay upstream (`anteroom simulate` for fixed non-streaming answers, gateway-bench for streams of
# stamped tokens), an nginx reverse proxy in front of them, a bare Kestrel proxy (`gateway-bench proxy`: what Kestrel
# and HttpClient cost with nothing else) and Anteroom as built in Release with its shipped appsettings.json, then
# drives the four targets with the same load and prints one table. Everything listens on
# 127.0.0.1 on free ports; everything it starts is stopped on exit. See bench/README.md for what is measured.
#
# Settings (environment): BENCH_SECONDS (10) per measured run, BENCH_WARMUP_SECONDS (20), BENCH_RATES ("1000 2000"),
# BENCH_CONNECTIONS (40), BENCH_STREAM_RATE (50 streams/s), BENCH_STREAM_SECONDS (5), BENCH_KEEP=1 keeps the logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-20}
RATES=${BENCH_RATES:-"1000 2000"}
CONNECTIONS=${BENCH_CONNECTIONS:-40}
STREAM_RATE=${BENCH_STREAM_RATE:-50}
STREAM_SECONDS=${BENCH_STREAM_SECONDS:-5}
STREAM_TOKENS=100

say() { printf '== %s\n' "$*" >&2; }

# --- what it needs -------------------------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v hey >/dev/null 2>&1 || missing+=(hey)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
  say "installing ${missing[*]} with apt-get"
  SUDO=()
  [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq
  # The package's own nginx service must not start (and listen on port 80): only the one configured below runs.
  policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  ((policy_added)) && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- build ---------------------------------------------------------------------------------------------------------
say "building Anteroom and gateway-bench in Release"
dotnet build "$ROOT/src/Anteroom/Anteroom.csproj" -c Release --nologo -v q >&2
dotnet build "$ROOT/bench/Anteroom.GatewayBench/Anteroom.GatewayBench.csproj" -c Release --nologo -v q >&2
ANTEROOM="$ROOT/src/Anteroom/bin/Release/net10.0/anteroom"
BENCH="$ROOT/bench/Anteroom.GatewayBench/bin/Release/net10.0/gateway-bench"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/anteroom-gateway-bench.XXXXXX")
chmod 755 "$WORK"
started=()
cleanup() {
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then say "logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

mapfile -t ports < <("$BENCH" ports --count 7)
P_SIM=${ports[0]} P_STAMP=${ports[1]} P_NGX_SIM=${ports[2]} P_NGX_STAMP=${ports[3]} P_ANTEROOM=${ports[4]}
P_BARE_SIM=${ports[5]} P_BARE_STAMP=${ports[6]}

# --- the upstreams ---------------------------------------------------------------------------------------------------
# Non-streaming: the simulator with no delay at all. Every answer is exactly 16 tokens: its length is drawn within
# ±50% of 32 and then held to the request's max_tokens of 16.
"$ANTEROOM" simulate --urls "http://127.0.0.1:$P_SIM" --models fixed --parallel 1000 --max-queue 1000 \
  --ttft-ms 0 --tokens-per-second 1000000000 --output-tokens 32 >"$WORK/simulator.log" 2>&1 &
SIM_PID=$!
started+=("$SIM_PID")
# Streaming: 100 tokens as fast as they can be written, each carrying the moment it was written.
"$BENCH" upstream --port "$P_STAMP" --tokens "$STREAM_TOKENS" >"$WORK/stamped.log" 2>&1 &
STAMP_PID=$!
started+=("$STAMP_PID")

# --- nginx ---------------------------------------------------------------------------------------------------------
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log $WORK/nginx/access.log;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream simulator { server 127.0.0.1:$P_SIM; keepalive 64; }
  upstream stamped { server 127.0.0.1:$P_STAMP; keepalive 64; }
  server {
    listen 127.0.0.1:$P_NGX_SIM;
    location / { proxy_pass http://simulator; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
  server {
    listen 127.0.0.1:$P_NGX_STAMP;
    location / { proxy_pass http://stamped; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
EOF
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
started+=("$NGINX_PID")

# --- the bare Kestrel proxy, one per upstream -----------------------------------------------------------------------
"$BENCH" proxy --port "$P_BARE_SIM" --upstream "http://127.0.0.1:$P_SIM" >"$WORK/bare-sim.log" 2>&1 &
BARE_SIM_PID=$!
started+=("$BARE_SIM_PID")
"$BENCH" proxy --port "$P_BARE_STAMP" --upstream "http://127.0.0.1:$P_STAMP" >"$WORK/bare-stamped.log" 2>&1 &
BARE_STAMP_PID=$!
started+=("$BARE_STAMP_PID")

# --- Anteroom, as shipped, pointed at both upstreams -----------------------------------------------------------------
# Its working directory is the temporary one, so only the appsettings.json shipped beside the binary applies. The
# per-user limits are raised because the load generator is one user; 1,000 slots per backend, so nothing queues.
(cd "$WORK" && exec "$ANTEROOM" serve --urls "http://127.0.0.1:$P_ANTEROOM" \
  --Anteroom:Data:Directory="$WORK/data" \
  --Anteroom:Queue:MaxInFlightPerUser=1000 --Anteroom:Queue:MaxWaitingPerUser=1000 \
  --Anteroom:Backends:0:Name=fixed --Anteroom:Backends:0:Url="http://127.0.0.1:$P_SIM" \
  --Anteroom:Backends:0:Protocol=openai --Anteroom:Backends:0:Slots=1000 --Anteroom:Backends:0:Models:0=fixed \
  --Anteroom:Backends:1:Name=stamped --Anteroom:Backends:1:Url="http://127.0.0.1:$P_STAMP" \
  --Anteroom:Backends:1:Protocol=openai --Anteroom:Backends:1:Slots=1000 --Anteroom:Backends:1:Models:0=stamped \
  >"$WORK/anteroom.log" 2>&1) &
ANTEROOM_PID=$!
started+=("$ANTEROOM_PID")

BODY="$WORK/body.json"
printf '%s' '{"model":"fixed","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}' >"$BODY"

ready() { # url, model: one answer with 200 within 60 s
  for _ in $(seq 1 120); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
      -d "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":16}" "$1/v1/chat/completions" || true)
    [[ $code == 200 ]] && return 0
    sleep 0.5
  done
  say "no answer from $1 (see the logs in $WORK)"; BENCH_KEEP=1; exit 1
}
ready "http://127.0.0.1:$P_SIM" fixed
ready "http://127.0.0.1:$P_STAMP" stamped
ready "http://127.0.0.1:$P_NGX_SIM" fixed
ready "http://127.0.0.1:$P_BARE_SIM" fixed
ready "http://127.0.0.1:$P_BARE_STAMP" stamped
ready "http://127.0.0.1:$P_ANTEROOM" fixed
ready "http://127.0.0.1:$P_ANTEROOM" stamped

# --- measuring -----------------------------------------------------------------------------------------------------
TICKS=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of the given processes, in clock ticks
  local total=0 pid
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    # Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    local rest
    rest=$(sed 's/^.*) //' "/proc/$pid/stat")
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}
NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID" || true))
proxy_pids() { # the processes between the client and the upstream
  case $1 in
    nginx) echo "${NGINX_PIDS[@]}" ;;
    anteroom) echo "$ANTEROOM_PID" ;;
    kestrel) echo "$BARE_SIM_PID $BARE_STAMP_PID" ;;
  esac
}
per() { # target ticks count decimals: CPU microseconds per item, "-" for the direct target's (absent) proxy
  if [[ $1 == direct ]]; then echo "-"; return; fi
  awk -v t="$2" -v n="$3" -v hz="$TICKS" -v d="$4" 'BEGIN { if (n) printf "%.*f", d, t * 1000000 / hz / n; else print "-" }'
}
load1() { cut -d' ' -f1 /proc/loadavg; }
loads=()

# hey holds a rate with -q, which is per worker: CONNECTIONS workers at RATE/CONNECTIONS each.
run_hey() { # name url rate seconds -> prints hey's report into $WORK/hey-name-rate.txt
  local q
  q=$(awk -v r="$3" -v c="$CONNECTIONS" 'BEGIN { printf "%g", r / c }')
  hey -z "$4s" -c "$CONNECTIONS" -q "$q" -t 10 -m POST -T application/json -D "$BODY" "$2/v1/chat/completions"
}

declare -A result
measure() { # name url
  local name=$1 url=$2 rate
  say "$name: warming up for ${WARMUP_SECONDS}s"
  run_hey "$name" "$url" 1000 "$WARMUP_SECONDS" >/dev/null
  for rate in $RATES; do
    say "$name: ${rate} req/s for ${SECONDS_PER_RUN}s"
    local p0 s0 p1 s1 out
    p0=$(cpu_ticks $(proxy_pids "$name")); s0=$(cpu_ticks "$SIM_PID")
    loads+=("$(load1)")
    out="$WORK/hey-$name-$rate.txt"
    run_hey "$name" "$url" "$rate" "$SECONDS_PER_RUN" >"$out"
    loads+=("$(load1)")
    p1=$(cpu_ticks $(proxy_pids "$name")); s1=$(cpu_ticks "$SIM_PID")
    local ok total p50 p99 rps
    ok=$(awk '/^[ \t]*\[200\]/ { n += $2 } END { print n + 0 }' "$out")
    total=$(awk '/^[ \t]*\[[0-9]+\][ \t]+[0-9]+ responses/ { n += $2 } END { print n + 0 }' "$out")
    errors=$(awk '/^Error distribution:/ { e = 1; next } e && /^[ \t]*\[[0-9]+\]/ { gsub(/[\[\]]/, "", $1); n += $1 } END { print n + 0 }' "$out")
    p50=$(awk '/ 50% in / { printf "%.1f", $3 * 1000 }' "$out")
    p99=$(awk '/ 99% in / { printf "%.1f", $3 * 1000 }' "$out")
    rps=$(awk '/Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    result[$name,$rate]="$p50 / $p99 ms, $rps/s, $((total - ok + errors)) errors"
    result[$name,$rate,proxy]=$(per "$name" $((p1 - p0)) "$ok" 0)
    result[$name,$rate,upstream]=$(per upstream $((s1 - s0)) "$ok" 0)
  done
}

measure direct "http://127.0.0.1:$P_SIM"
measure nginx "http://127.0.0.1:$P_NGX_SIM"
measure kestrel "http://127.0.0.1:$P_BARE_SIM"
measure anteroom "http://127.0.0.1:$P_ANTEROOM"

declare -A streamed
stream() { # name url
  local name=$1 url=$2 a0 a1 line
  say "$name: streams of $STREAM_TOKENS tokens, $STREAM_RATE/s for ${STREAM_SECONDS}s"
  "$BENCH" stream --url "$url/v1/chat/completions" --model stamped --rate "$STREAM_RATE" --seconds 2 --tokens "$STREAM_TOKENS" >/dev/null
  p0=$(cpu_ticks $(proxy_pids "$name")); s0=$(cpu_ticks "$STAMP_PID")
  loads+=("$(load1)")
  line=$("$BENCH" stream --url "$url/v1/chat/completions" --model stamped --rate "$STREAM_RATE" --seconds "$STREAM_SECONDS" --tokens "$STREAM_TOKENS")
  loads+=("$(load1)")
  p1=$(cpu_ticks $(proxy_pids "$name")); s1=$(cpu_ticks "$STAMP_PID")
  echo "$name: $line" >>"$WORK/streams.txt"
  local tokens p50 p99 errors incomplete
  tokens=$(sed -E 's/.*tokens=([0-9]+).*/\1/' <<<"$line")
  p50=$(sed -E 's/.*delay_p50_us=([0-9.NaN]+).*/\1/' <<<"$line")
  p99=$(sed -E 's/.*delay_p99_us=([0-9.NaN]+).*/\1/' <<<"$line")
  errors=$(sed -E 's/.*errors=([0-9]+).*/\1/' <<<"$line")
  incomplete=$(sed -E 's/.*incomplete=([0-9]+).*/\1/' <<<"$line")
  streamed[$name]="$p50 / $p99 µs, $tokens tokens, $((errors + incomplete)) errors"
  streamed[$name,proxy]=$(per "$name" $((p1 - p0)) "$tokens" 1)
  streamed[$name,upstream]=$(per upstream $((s1 - s0)) "$tokens" 1)
}

stream direct "http://127.0.0.1:$P_STAMP"
stream nginx "http://127.0.0.1:$P_NGX_STAMP"
stream kestrel "http://127.0.0.1:$P_BARE_STAMP"
stream anteroom "http://127.0.0.1:$P_ANTEROOM"

# --- the table -----------------------------------------------------------------------------------------------------
set -- $RATES
R1=$1 R2=${2:-$1}
echo
echo "Gateway benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, commit $(git -C "$ROOT" rev-parse --short HEAD)"
echo "Load average (1 min) at the start and end of each run: ${loads[*]}"
echo
echo "Non-streaming POST /v1/chat/completions, $CONNECTIONS connections, ${SECONDS_PER_RUN} s per rate (hey -q per worker)"
echo
echo "| target | p50 / p99 at $R1 req/s, achieved rate, errors | at $R2 req/s | proxy CPU µs/request at $R1 / $R2 | upstream CPU µs/request at $R1 / $R2 |"
echo "|---|---|---|---|---|"
for name in direct nginx kestrel anteroom; do
  echo "| $name | ${result[$name,$R1]} | ${result[$name,$R2]} | ${result[$name,$R1,proxy]} / ${result[$name,$R2,proxy]} | ${result[$name,$R1,upstream]} / ${result[$name,$R2,upstream]} |"
done
echo
echo "Streaming, $STREAM_TOKENS-token answers, $STREAM_RATE streams/s for ${STREAM_SECONDS} s"
echo
echo "| target | delay from upstream write to client read, p50 / p99; tokens; errors | proxy CPU µs/token | upstream CPU µs/token |"
echo "|---|---|---|---|"
for name in direct nginx kestrel anteroom; do
  echo "| $name | ${streamed[$name]} | ${streamed[$name,proxy]} | ${streamed[$name,upstream]} |"
done
