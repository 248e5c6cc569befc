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

# shellcheck source=bench/gateway/common.sh
source "$ROOT/bench/gateway/common.sh"

need_packages nginx:nginx hey:hey curl:curl
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
build_release
make_workdir

mapfile -t ports < <("$BENCH" ports --count 7)
P_SIM=${ports[0]} P_STAMP=${ports[1]} P_NGX_SIM=${ports[2]} P_NGX_STAMP=${ports[3]} P_ANTEROOM=${ports[4]}
P_BARE_SIM=${ports[5]} P_BARE_STAMP=${ports[6]}

# --- the upstreams ---------------------------------------------------------------------------------------------------
# Non-streaming: the simulator with no delay at all.
start_simulator "$P_SIM"
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

write_body
ready "http://127.0.0.1:$P_SIM" fixed
ready "http://127.0.0.1:$P_STAMP" stamped
ready "http://127.0.0.1:$P_NGX_SIM" fixed
ready "http://127.0.0.1:$P_BARE_SIM" fixed
ready "http://127.0.0.1:$P_BARE_STAMP" stamped
ready "http://127.0.0.1:$P_ANTEROOM" fixed
ready "http://127.0.0.1:$P_ANTEROOM" stamped

# --- measuring -----------------------------------------------------------------------------------------------------
NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID" || true))
proxy_pids() { # the processes between the client and the upstream
  case $1 in
    nginx) echo "${NGINX_PIDS[@]}" ;;
    anteroom) echo "$ANTEROOM_PID" ;;
    kestrel) echo "$BARE_SIM_PID $BARE_STAMP_PID" ;;
  esac
}
per_target() { # target ticks count decimals: CPU microseconds per item, "-" for the direct target's (absent) proxy
  if [[ $1 == direct ]]; then echo "-"; return; fi
  per "$2" "$3" "$4"
}
loads=()

declare -A result
measure() { # name url
  local name=$1 url=$2 rate
  say "$name: warming up for ${WARMUP_SECONDS}s"
  hey_at "$url" 1000 "$WARMUP_SECONDS" "$CONNECTIONS" >/dev/null
  for rate in $RATES; do
    say "$name: ${rate} req/s for ${SECONDS_PER_RUN}s"
    local p0 s0 p1 s1 out
    p0=$(cpu_ticks $(proxy_pids "$name")); s0=$(cpu_ticks "$SIM_PID")
    loads+=("$(load1)")
    out="$WORK/hey-$name-$rate.txt"
    hey_at "$url" "$rate" "$SECONDS_PER_RUN" "$CONNECTIONS" >"$out"
    loads+=("$(load1)")
    p1=$(cpu_ticks $(proxy_pids "$name")); s1=$(cpu_ticks "$SIM_PID")
    local ok
    ok=$(hey_ok "$out")
    result[$name,$rate]=$(hey_line "$out")
    result[$name,$rate,proxy]=$(per_target "$name" $((p1 - p0)) "$ok" 0)
    result[$name,$rate,upstream]=$(per $((s1 - s0)) "$ok" 0)
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
  streamed[$name,proxy]=$(per_target "$name" $((p1 - p0)) "$tokens" 1)
  streamed[$name,upstream]=$(per $((s1 - s0)) "$tokens" 1)
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
