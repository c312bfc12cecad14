#!/bin/sh
# Installs the programs herald's tests start: redis-server, nginx,
# docker-compose (only its `config` check runs; no Docker engine is needed),
# Chromium and a font for the browser tests (Debian's chromium package: the
# tests drive it with playwright-core, which downloads no browser), and
# Node.js 20 or later with npm for the JavaScript client's tests.
# As root on Debian/Ubuntu it uses apt-get; otherwise it says what to install.
set -eu

need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
command -v nginx >/dev/null 2>&1 || need="$need nginx-light"
command -v docker-compose >/dev/null 2>&1 || need="$need docker-compose"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need="$need fonts-dejavu-core"
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"

if [ -n "$need" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing:$need"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $need >/dev/null
	else
		echo "herald's tests need:$need" >&2
		echo "install them (Debian/Ubuntu: sudo apt-get install$need) and run make test again" >&2
		exit 1
	fi
fi

# node:test's --test-force-exit needs Node.js 20.14 or later.
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
	echo "the JavaScript client's tests need Node.js 20 or later; this is $(node --version)" >&2
	exit 1
fi
