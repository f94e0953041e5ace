#!/usr/bin/env bash
# Builds the Consul server the registry tests run: v1.16.3, the last MPL-2.0
# release, from the Go module proxy, cached under ~/.cache/gingov by version.
set -euo pipefail
version=1.16.3
cache="${GINGOV_CACHE:-$HOME/.cache/gingov}/consul-$version"
bin="$cache/consul"
if [ "${1:-}" = --path ]; then echo "$bin"; exit 0; fi
if [ -x "$bin" ] && [[ "$("$bin" version 2>/dev/null || true)" == *"Consul v$version"* ]]; then exit 0; fi
export GOWORK=off GOFLAGS=-mod=mod
work=$(mktemp -d "${TMPDIR:-/tmp}/consul-build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
dir=$(cd "$work" && go mod download -json "github.com/hashicorp/consul@v$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "build-consul: download failed"; exit 1; }
cp -r "$dir" "$work/src"; chmod -R u+w "$work/src"
# The module's go.mod points its own nested modules at local directories;
# the published versions it already requires are used instead.
python3 - "$work/src/go.mod" <<'PY'
import re, sys
p = sys.argv[1]; s = open(p).read()
s = re.sub(r'(?ms)^replace \(\n.*?^\)\n', '', s)
s = re.sub(r'(?m)^replace .*\n', '', s)
open(p, 'w').write(s)
PY
mkdir -p "$cache"
(cd "$work/src" && go build -trimpath -ldflags "-s -w" -o "$bin.tmp" .)
mv "$bin.tmp" "$bin"
"$bin" version | head -1
