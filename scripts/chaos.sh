#!/usr/bin/env bash
# The chaos suite (make chaos): installs the servers it needs, then runs
# examples/chaos (build tag chaos), which builds the examples and the load
# generator, starts every server and process it uses on free loopback
# ports, injects its faults, stops everything it started by PID, and prints
# the table that docs/reliability.md publishes. About 3 minutes on 2 cores.
# CHAOS_TABLE=file also writes the table to file.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

bash scripts/install-deps.sh || { echo "chaos: installing dependencies failed"; exit 1; }
# A server the suite needs and cannot find fails it (testenv skips
# otherwise): a chaos run that skipped a fault would not measure it.
export CI=true
cd examples
go test -tags chaos -count=1 -timeout 10m -v -run '^TestChaos$' ./chaos
