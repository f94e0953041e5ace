#!/usr/bin/env bash
# Installs what the tests need, idempotently and quietly when it is there:
# Debian packages for the real servers. Later issues add rnacos (cargo),
# the Eureka fixture (Maven), etcd and Prometheus here.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

apt_packages=(redis-server)   # command per package: see need_cmd below
need_cmd=(redis-server)

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
