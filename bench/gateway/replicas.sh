#!/usr/bin/env bash
# Redis mode measured, one command: bench/gateway/replicas.sh
#
# Starts the zero-delay simulator, a redis-server, one Anteroom in-process (no Redis) and three Anteroom replicas in
# Redis mode, all built in Release with the shipped appsettings.json, and nginx in front of one, two and three of
# the replicas. Then, from one run:
#   1. the latency Redis mode adds: the in-process gateway and one Redis-mode replica at the same fixed rates;
#   2. the throughput of one, two and three replicas behind nginx, as fast as they answer.
# Everything listens on 127.0.0.1 on free ports and is stopped on exit. See bench/README.md.
#
# Settings (environment): BENCH_SECONDS (10) per measured run, BENCH_WARMUP_SECONDS (20), BENCH_RATES ("500 1000"),
# BENCH_CONNECTIONS (40) for the fixed rates, BENCH_THROUGHPUT_CONNECTIONS (64), BENCH_KEEP=1 keeps the logs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-20}
RATES=${BENCH_RATES:-"500 1000"}
CONNECTIONS=${BENCH_CONNECTIONS:-40}
THROUGHPUT_CONNECTIONS=${BENCH_THROUGHPUT_CONNECTIONS:-64}

# shellcheck source=bench/gateway/common.sh
source "$ROOT/bench/gateway/common.sh"

need_packages nginx:nginx hey:hey curl:curl redis-server:redis-server
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
build_release
make_workdir

mapfile -t ports < <("$BENCH" ports --count 9)
P_SIM=${ports[0]} P_REDIS=${ports[1]} P_INPROC=${ports[2]}
P_REPLICA=("${ports[3]}" "${ports[4]}" "${ports[5]}")
P_NGX=("${ports[6]}" "${ports[7]}" "${ports[8]}")

start_simulator "$P_SIM"

redis-server --port "$P_REDIS" --bind 127.0.0.1 --dir "$WORK" --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
started+=("$REDIS_PID")

# One backend of 1,000 slots, so nothing queues; the per-user limits raised because the load generator is one user.
start_anteroom() { # name port [extra arguments...] -> sets LAST_PID
  local name=$1 port=$2
  shift 2
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec "$ANTEROOM" serve --urls "http://127.0.0.1:$port" \
    --Anteroom:Data:Directory="$WORK/$name/data" \
    --Anteroom:Queue:MaxInFlightPerUser=1000 --Anteroom:Queue:MaxWaitingPerUser=1000 \
    --Anteroom:Backends:0:Name=fixed --Anteroom:Backends:0:Url="http://127.0.0.1:$P_SIM" \
    --Anteroom:Backends:0:Protocol=openai --Anteroom:Backends:0:Slots=1000 --Anteroom:Backends:0:Models:0=fixed \
    "$@" >"$WORK/$name.log" 2>&1) &
  LAST_PID=$!
  started+=("$LAST_PID")
}
start_anteroom inproc "$P_INPROC"
INPROC_PID=$LAST_PID
REPLICA_PIDS=()
for i in 0 1 2; do
  start_anteroom "replica$((i + 1))" "${P_REPLICA[$i]}" --Anteroom:Redis:Configuration="127.0.0.1:$P_REDIS" --Anteroom:Redis:Prefix=bench
  REPLICA_PIDS+=("$LAST_PID")
done

mkdir -p "$WORK/nginx"
{
  echo "daemon off; worker_processes auto; pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log warn;"
  echo "events { worker_connections 4096; }"
  echo "http {"
  echo "  access_log $WORK/nginx/access.log;"
  for d in body proxy fastcgi uwsgi scgi; do echo "  ${d}_temp_path $WORK/nginx/$d;" | sed 's/body_temp/client_body_temp/'; done
  for n in 1 2 3; do
    echo "  upstream replicas$n { keepalive 64;"
    for ((i = 0; i < n; i++)); do echo "    server 127.0.0.1:${P_REPLICA[$i]};"; done
    echo "  }"
    echo "  server { listen 127.0.0.1:${P_NGX[$((n - 1))]};"
    echo "    location / { proxy_pass http://replicas$n; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host; proxy_buffering off; } }"
  done
  echo "}"
} >"$WORK/nginx/nginx.conf"
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
started+=("$NGINX_PID")

write_body
ready "http://127.0.0.1:$P_SIM" fixed
ready "http://127.0.0.1:$P_INPROC" fixed
for i in 0 1 2; do ready "http://127.0.0.1:${P_REPLICA[$i]}" fixed; done
for i in 0 1 2; do ready "http://127.0.0.1:${P_NGX[$i]}" fixed; done
NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID" || true))
loads=()

# --- 1. the latency Redis mode adds ---------------------------------------------------------------------------------
declare -A latency
fixed_rates() { # name url pids...
  local name=$1 url=$2 rate out c0 c1 r0 r1
  shift 2
  say "$name: warming up for ${WARMUP_SECONDS}s"
  hey_at "$url" 500 "$WARMUP_SECONDS" "$CONNECTIONS" >/dev/null
  for rate in $RATES; do
    say "$name: ${rate} req/s for ${SECONDS_PER_RUN}s"
    out="$WORK/hey-$name-$rate.txt"
    c0=$(cpu_ticks "$@"); r0=$(cpu_ticks "$REDIS_PID")
    loads+=("$(load1)")
    hey_at "$url" "$rate" "$SECONDS_PER_RUN" "$CONNECTIONS" >"$out"
    loads+=("$(load1)")
    c1=$(cpu_ticks "$@"); r1=$(cpu_ticks "$REDIS_PID")
    latency[$name,$rate]=$(hey_line "$out")
    latency[$name,$rate,cpu]=$(per $((c1 - c0)) "$(hey_ok "$out")" 0)
    latency[$name,$rate,redis]=$(per $((r1 - r0)) "$(hey_ok "$out")" 0)
  done
}
fixed_rates in-process "http://127.0.0.1:$P_INPROC" "$INPROC_PID"
fixed_rates redis "http://127.0.0.1:${P_REPLICA[0]}" "${REPLICA_PIDS[0]}"

# --- 2. throughput of one, two and three replicas --------------------------------------------------------------------
declare -A throughput
for n in 1 2 3; do
  url="http://127.0.0.1:${P_NGX[$((n - 1))]}"
  say "$n replica(s) behind nginx: warming up, then as fast as they answer for ${SECONDS_PER_RUN}s, $THROUGHPUT_CONNECTIONS connections"
  hey -z "${WARMUP_SECONDS}s" -c "$THROUGHPUT_CONNECTIONS" -t 10 -m POST -T application/json -D "$BODY" "$url/v1/chat/completions" >/dev/null
  out="$WORK/hey-replicas-$n.txt"
  c0=$(cpu_ticks "${REPLICA_PIDS[@]:0:$n}"); r0=$(cpu_ticks "$REDIS_PID"); x0=$(cpu_ticks "${NGINX_PIDS[@]}")
  loads+=("$(load1)")
  hey -z "${SECONDS_PER_RUN}s" -c "$THROUGHPUT_CONNECTIONS" -t 10 -m POST -T application/json -D "$BODY" "$url/v1/chat/completions" >"$out"
  loads+=("$(load1)")
  c1=$(cpu_ticks "${REPLICA_PIDS[@]:0:$n}"); r1=$(cpu_ticks "$REDIS_PID"); x1=$(cpu_ticks "${NGINX_PIDS[@]}")
  ok=$(hey_ok "$out")
  throughput[$n]=$(hey_line "$out")
  throughput[$n,cpu]="$(per $((c1 - c0)) "$ok" 0) / $(per $((r1 - r0)) "$ok" 0) / $(per $((x1 - x0)) "$ok" 0)"
done

# --- the tables ------------------------------------------------------------------------------------------------------
set -- $RATES
R1=$1 R2=${2:-$1}
echo
echo "Redis mode, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, commit $(git -C "$ROOT" rev-parse --short HEAD)"
echo "Load average (1 min) at the start and end of each run: ${loads[*]}"
echo
echo "Latency added: non-streaming POST /v1/chat/completions straight to one gateway, $CONNECTIONS connections, ${SECONDS_PER_RUN} s per rate"
echo
echo "| mode | p50 / p99 at $R1 req/s, achieved rate, errors | at $R2 req/s | Anteroom CPU µs/request at $R1 / $R2 | redis-server CPU µs/request at $R1 / $R2 |"
echo "|---|---|---|---|---|"
for name in in-process redis; do
  echo "| $name | ${latency[$name,$R1]} | ${latency[$name,$R2]} | ${latency[$name,$R1,cpu]} / ${latency[$name,$R2,cpu]} | ${latency[$name,$R1,redis]} / ${latency[$name,$R2,redis]} |"
done
echo
echo "Throughput: Redis-mode replicas behind nginx, $THROUGHPUT_CONNECTIONS connections, no rate limit, ${SECONDS_PER_RUN} s each"
echo
echo "| replicas | p50 / p99, achieved rate, errors | CPU µs/request: replicas / redis-server / nginx |"
echo "|---|---|---|"
for n in 1 2 3; do
  echo "| $n | ${throughput[$n]} | ${throughput[$n,cpu]} |"
done
