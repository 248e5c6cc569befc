#!/usr/bin/env bash
# Runs every Anteroom test on a fresh machine that has the .NET SDK; installs anything else the tests need.
set -euo pipefail
cd "$(dirname "$0")"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test Anteroom.slnx --nologo 2>&1 | tee "$log" || status=$?

# One closing line over every test project: "N passed, N failed".
awk '/(Passed|Failed)!  *- *Failed: *[0-9]+, *Passed: *[0-9]+/ {
       for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1) }
     }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
