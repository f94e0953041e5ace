#!/usr/bin/env bash
# go generate in every module (a nested module's go:generate directives are
# not reached from the root): docs/errcodes.md, setup/gingov.schema.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export GOWORK=off
for dir in $(modules); do
	echo "== generate $dir"
	(cd "$dir" && go generate ./...)
done
