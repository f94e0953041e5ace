#!/usr/bin/env bash
# Prints the path of the Eureka server jar that gingov's registry tests run,
# building it first when it is not cached. This script is the one place that
# knows the cache key: a SHA-256 over this directory's files (target/
# excluded), so any change to the fixture gives a new jar. Used by
# scripts/install-deps.sh and by internal/testenv (StartEureka).
#
#   build.sh           print the jar path, building it with Maven if missing
#   build.sh --path    print the jar path only (it may not exist)
#
# GINGOV_EUREKA_JAR, when set, names a jar to use instead (never built).
# The cache dir is ${XDG_CACHE_HOME:-~/.cache}/gingov. Needs java >= 17 and
# mvn on PATH to build; Maven Central must be reachable the first time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ -n "${GINGOV_EUREKA_JAR:-}" ]; then
	echo "$GINGOV_EUREKA_JAR"
	exit 0
fi

hash=$(cd "$here" && find . -type f -not -path './target/*' | LC_ALL=C sort |
	xargs sha256sum | sha256sum | cut -c1-16)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/gingov"
jar="$cache/eureka-server-$hash.jar"

if [ "${1:-}" = "--path" ] || [ -s "$jar" ]; then
	echo "$jar"
	exit 0
fi

mkdir -p "$cache"
# One build at a time per cache dir (tests and install-deps may race).
exec 9>"$cache/eureka-server.lock"
command -v flock >/dev/null 2>&1 && flock 9
if [ -s "$jar" ]; then
	echo "$jar"
	exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/gingov-eureka-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$here/." "$work/"
rm -rf "$work/target"
log="$work/mvn.log"
if ! (cd "$work" && mvn -q -B package -DskipTests) >"$log" 2>&1; then
	cat "$log" >&2
	echo "eureka-server: mvn package failed" >&2
	exit 1
fi
cp "$work/target/eureka-server.jar" "$jar.tmp.$$"
mv "$jar.tmp.$$" "$jar"
echo "$jar"
