#!/usr/bin/env bash
# The README's test command (make test): installs and starts what the tests
# need, checks formatting and the dependency rules, then vets and tests every
# module with -race. Servers are started by the tests themselves, on free
# loopback ports, and stopped when each test ends.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

bash scripts/install-deps.sh || { echo "test: installing dependencies failed"; exit 1; }

fail=0
unformatted=$(git ls-files --cached --others --exclude-standard -- '*.go' | xargs -r gofmt -l)
if [ -n "$unformatted" ]; then
	echo "test: gofmt would change:"; echo "$unformatted"; fail=1
fi
bash scripts/check-deps.sh || fail=1

for dir in $(modules); do
	echo "== $dir"
	(cd "$dir" && go vet ./...) || fail=1
	(cd "$dir" && go test -race -count=1 -timeout 20m ./...) || fail=1
done

if [ "$fail" != 0 ]; then
	echo "test: FAILED"
	exit 1
fi
