#!/bin/sh
# Installs the programs herald's tests start: redis-server, nginx and
# docker-compose (only its `config` check runs; no Docker engine is needed).
# As root on Debian/Ubuntu it uses apt-get; otherwise it says what to install.
set -eu

need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
command -v nginx >/dev/null 2>&1 || need="$need nginx-light"
command -v docker-compose >/dev/null 2>&1 || need="$need docker-compose"

if [ -z "$need" ]; then
	exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing:$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $need >/dev/null
	exit 0
fi
echo "herald's tests need:$need" >&2
echo "install them (Debian/Ubuntu: sudo apt-get install$need) and run make test again" >&2
exit 1
