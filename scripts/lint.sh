#!/usr/bin/env bash
# go vet and golangci-lint (config: .golangci.yml) over every module.
# golangci-lint is built once from the Go module proxy at a pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export GOWORK=off
version=v2.11.0
bin="$(go env GOPATH)/bin/golangci-lint"
if [[ "$("$bin" version 2>/dev/null || true)" != *"${version#v}"* ]]; then
	echo "lint: building golangci-lint $version"
	go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
fi
fail=0
for dir in $(modules); do
	echo "== lint $dir"
	(cd "$dir" && go vet ./... && "$bin" run --config "$OLDPWD/.golangci.yml" ./...) || fail=1
done
exit $fail
