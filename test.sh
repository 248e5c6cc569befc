#!/usr/bin/env bash
# Runs every Anteroom test on a fresh machine that has the .NET SDK, Node 20 and npm; installs anything else the
# tests need (Debian's Chromium for the browser tests): the .NET tests first (they also build the gateway), then
# the Node SDK tests and the browser tests against that build.
set -euo pipefail
cd "$(dirname "$0")"

# The browser tests drive Debian's Chromium; install it when this machine lacks it.
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM_PATH:-}" ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

dotnet_log=$(mktemp)
node_log=$(mktemp)
trap 'rm -f "$dotnet_log" "$node_log"' EXIT
dotnet_status=0
dotnet test Anteroom.slnx --nologo 2>&1 | tee "$dotnet_log" || dotnet_status=$?
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
