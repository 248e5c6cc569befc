#!/usr/bin/env bash
# Runs every Anteroom test on a fresh machine that has the .NET SDK, Node 20 and npm; installs anything else the
# tests need (Debian packages: Chromium, redis-server, PostgreSQL): the .NET tests first (they also build the gateway), then
# the Node SDK tests and the browser tests against that build.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages the tests start for real: Chromium (the browser tests), redis-server and PostgreSQL (the shared
# queue and storage of several replicas). Install those this machine lacks; the tests start their own servers on free
# ports, so the packages' own services must not start (and take the default ports): policy-rc.d says no.
missing=()
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM_PATH:-}" ]; then missing+=(chromium); fi
if ! command -v redis-server >/dev/null 2>&1; then missing+=(redis-server); fi
if ! command -v postgres >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then missing+=(postgresql); fi
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    policy_added=1
  fi
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$policy_added" -eq 1 ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
fi

dotnet_log=$(mktemp)
node_log=$(mktemp)
trap 'rm -f "$dotnet_log" "$node_log"' EXIT
dotnet_status=0
# One test project at a time (-m:1): the scheduling suite's Redis contract runs keep both cores busy, and the gateway
# suite's timing-sensitive tests (client timeouts, keep-alives) should not share the machine with them.
dotnet test Anteroom.slnx --nologo -m:1 2>&1 | tee "$dotnet_log" || dotnet_status=$?
status=$dotnet_status

# The official openai and ollama npm packages (tests/node), then the pages in Chromium (tests/browser), against
# the gateway built above; each with its lock file pinned.
node_status=0
for suite in tests/node tests/browser; do
  (cd "$suite" && npm ci --no-audit --no-fund && node --test) 2>&1 | tee -a "$node_log" || node_status=$?
done
if [ "$node_status" -ne 0 ]; then status=$node_status; fi

# One closing line over every test project and the Node suites: "N passed, N failed".
# node --test ends with "# pass N", "# fail N", "# cancelled N" (TAP, as here where its output is piped) or
# "ℹ pass N"... (spec).
awk -v node_status="$node_status" -v dotnet_status="$dotnet_status" '
  FILENAME == ARGV[1] && /(Passed|Failed)!  *- *Failed: *[0-9]+, *Passed: *[0-9]+/ {
    for (i = 1; i <= NF; i++) { if ($i == "Failed:") { f += $(i+1); dotnet_f += $(i+1) } if ($i == "Passed:") p += $(i+1) }
  }
  FILENAME == ARGV[2] && /^(#|ℹ) pass [0-9]+$/ { p += $3 }
  # A cancelled test (its hook failed, or it outlived its parent) did not pass: count it as failed.
  FILENAME == ARGV[2] && /^(#|ℹ) (fail|cancelled) [0-9]+$/ { f += $3; node_f += $3 }
  END {
    # A Node suite that failed without counting a failed test (npm ci, a crash) still counts as one failure.
    if (node_status != 0 && node_f == 0) f += 1
    # So does a .NET run that failed without counting a failed test (a project that did not build).
    if (dotnet_status != 0 && dotnet_f == 0) f += 1
    printf "%d passed, %d failed\n", p, f
  }' "$dotnet_log" "$node_log"
exit "$status"
