# Shared by the scripts: the modules of the repository, and running as root.
# shellcheck shell=bash

# modules prints the directory of every go.mod, the root first.
modules() {
	git ls-files --cached --others --exclude-standard -- '*go.mod' 'go.mod' |
		xargs -n1 dirname | sort -u
}

# as_root runs a command as root (directly, or through sudo).
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
