#!/usr/bin/env bash
# scripts/set-version.sh vX.Y.Z sets the one version of the kit: the version
# line of the versions file and every requirement on a gingov module in every
# go.mod of the repository (replace lines stay). Then run make release-check;
# docs/releasing.md has the whole procedure.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 1 ]; then
	echo "usage: scripts/set-version.sh vX.Y.Z" >&2
	exit 2
fi
cd internal/releasecheck
GOWORK=off go run . -root ../.. set-version "$1"
