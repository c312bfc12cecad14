#!/usr/bin/env bash
# compare.sh: herald, the Node ws + ioredis peer and the bare-socket floor
# under the same load, one after the other in one command, and their
# figures side by side with herald's ratios to each.
#
#   scripts/peers/compare.sh                  # 15,000 sockets, 20,000 deliveries/s for 10 s
#   SOCKETS=50 RATE=200 DURATION=2s scripts/peers/compare.sh   # the CI smoke size
#
# Each server gets a fresh redis-server and runs the same two load-test
# commands (one socket per user):
#   1. connect, then 5 s of near silence (fanout --rate 1): RSS per idle
#      authenticated socket, 5 s after the burst;
#   2. connect, fanout at RATE for DURATION, one broadcast: server CPU per
#      delivery (process_cpu_seconds_total over the fan-out / deliveries),
#      publish→deliver p99, and the broadcast's last delivery.
# ROUNDS=N repeats the three servers N times, interleaved. The figures are
# CPU time per operation and ratios within the run: on a shared machine
# wall-clock figures move with the neighbours' load.
# Environment: SOCKETS, RATE, DURATION, ROUNDS, PAYLOAD (bytes), OUT (a
# directory for the JSON reports; default a temporary one), SERVERS (the
# subset to run, default "herald node floor"; an entry LABEL=BINARY (LABEL
# a shell name) runs
# another build of herald under LABEL, to measure a change against it in
# the same run).
set -euo pipefail

SOCKETS=${SOCKETS:-15000}
RATE=${RATE:-20000}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-1}
PAYLOAD=${PAYLOAD:-100}
SERVERS=${SERVERS:-herald node floor}
root=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
bin=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$bin"
}
trap cleanup EXIT

for tool in redis-server node npm jq; do
	command -v "$tool" >/dev/null || { echo "compare.sh: $tool is needed" >&2; exit 2; }
done
(cd "$root" && go build -o "$bin/herald" ./cmd/herald && go build -o "$bin/loadtest" ./cmd/loadtest)
if [ ! -d "$root/scripts/peers/node/node_modules" ]; then
	(cd "$root/scripts/peers/node" && npm ci --no-audit --no-fund >/dev/null)
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
wssecret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

waitport() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "compare.sh: nothing listens on port $1" >&2
	return 1
}

# start NAME REDISPORT PORT: starts the server, prints its pid.
start() {
	local name=$1 rport=$2 port=$3
	case $name in
	node)
		HERALD_ADDR=127.0.0.1:$port HERALD_REDIS_URL=redis://127.0.0.1:$rport/0 HERALD_SESSION_SECRET=$secret \
			node "$root/scripts/peers/node/server.js" >"$OUT/$name.log" 2>&1 &
		;;
	floor)
		"$bin/loadtest" floor --addr 127.0.0.1:$port --redis redis://127.0.0.1:$rport/0 >"$OUT/$name.log" 2>&1 &
		;;
	*)
		local exe=$bin/herald
		[ -n "${4:-}" ] && exe=$4
		HERALD_ADDR=127.0.0.1:$port HERALD_REDIS_URL=redis://127.0.0.1:$rport/0 \
			HERALD_SESSION_SECRET=$secret HERALD_WS_TOKEN_SECRET=$wssecret HERALD_LOG_LEVEL=warn \
			"$exe" >"$OUT/$name.log" 2>&1 &
		;;
	esac
	echo $!
}

# one NAME ROUND [BINARY]: both load-test commands against a fresh server.
one() {
	local name=$1 round=$2 exe=${3:-} rport port rpid spid
	rport=$(freeport)
	redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --logfile "" --daemonize no >/dev/null &
	rpid=$!
	pids+=("$rpid")
	waitport "$rport"
	port=$(freeport)
	spid=$(start "$name" "$rport" "$port" "$exe")
	pids+=("$spid")
	waitport "$port"
	local lt=("$bin/loadtest" --target "http://127.0.0.1:$port" --redis "redis://127.0.0.1:$rport/0"
		--session-secret "$secret" --sockets "$SOCKETS" --payload-bytes "$PAYLOAD")
	"${lt[@]}" --scenario connect,fanout --rate 1 --duration 5s --json "$OUT/$name.$round.idle.json" >"$OUT/$name.$round.idle.txt" 2>&1 || true
	"${lt[@]}" --scenario connect,fanout,broadcast --rate "$RATE" --duration "$DURATION" --json "$OUT/$name.$round.load.json" >"$OUT/$name.$round.load.txt" 2>&1 || true
	kill "$spid" "$rpid" 2>/dev/null || true
	wait "$spid" "$rpid" 2>/dev/null || true
}

# figures NAME ROUND: rss_kib cpu_us p99_ms broadcast_last_ms deliveries lost
figures() {
	local idle=$OUT/$1.$2.idle.json load=$OUT/$1.$2.load.json
	if [ ! -s "$idle" ] || [ ! -s "$load" ]; then
		echo "- - - - - -"
		return
	fi
	jq -r --argjson n "$SOCKETS" -s '
		def r2: if . == null then "-" else (. * 100 | round / 100) end;
		(.[0].scenarios | map(select(.name == "connect"))[0].server.rss_kib_before) as $before
		| (.[0].scenarios | map(select(.name == "fanout"))[0].server.rss_kib_after) as $after
		| (.[1].scenarios | map(select(.name == "fanout"))[0]) as $f
		| [ (if $before == null or $after == null then "-" else (($after - $before) / $n | r2) end),
		    ($f.server.cpu_us_per_delivery | r2),
		    ($f.delivery.p99_ms // "-"),
		    (.[1].broadcast.last_ms // "-"),
		    ($f.server.deliveries // "-"),
		    (($f.delivery.lost // 0) + ($f.delivery.duplicates // 0) + ($f.delivery.out_of_order // 0)) ]
		| map(tostring) | join(" ")' "$idle" "$load" 2>/dev/null || echo "- - - - - -"
}

for round in $(seq 1 "$ROUNDS"); do
	for entry in $SERVERS; do
		echo "compare.sh: round $round, $entry" >&2
		case $entry in
		*=*) one "${entry%%=*}" "$round" "${entry#*=}" ;;
		*) one "$entry" "$round" ;;
		esac
	done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f×", a / b }'; }

echo "$SOCKETS sockets, one user each; fan-out at $RATE deliveries/s for $DURATION, $PAYLOAD-byte payloads; reports in $OUT"
printf '%-6s %-6s %12s %12s %10s %14s %11s %6s\n' round server "rss_kib/sock" "cpu_us/deliv" "p99_ms" "bcast_last_ms" deliveries wrong
for round in $(seq 1 "$ROUNDS"); do
	for entry in $SERVERS; do
		name=${entry%%=*}
		read -r rss cpu p99 last n bad <<<"$(figures "$name" "$round")"
		printf '%-6s %-6s %12s %12s %10s %14s %11s %6s\n' "$round" "$name" "$rss" "$cpu" "$p99" "$last" "$n" "$bad"
		eval "rss_$name=\$rss cpu_$name=\$cpu last_$name=\$last"
	done
	if [[ " $SERVERS " == *" herald "* ]]; then
		for entry in $SERVERS; do
			peer=${entry%%=*}
			[ "$peer" = herald ] && continue
			eval "pr=\$rss_$peer pc=\$cpu_$peer pl=\$last_$peer"
			printf '%-6s %-6s %12s %12s %10s %14s\n' "$round" "h/$peer" "$(ratio "$rss_herald" "$pr")" "$(ratio "$cpu_herald" "$pc")" "" "$(ratio "$last_herald" "$pl")"
		done
	fi
done

# Exit 1 when a server's run failed its own correctness checks (sockets
# not welcomed, messages lost, duplicated or reordered, a broadcast missed):
# the comparison is only worth reading when all three did the same work.
status=0
for round in $(seq 1 "$ROUNDS"); do
	for entry in $SERVERS; do
		name=${entry%%=*}
		for part in idle load; do
			f=$OUT/$name.$round.$part.json
			if [ ! -s "$f" ] || ! jq -e '.ok' "$f" >/dev/null; then
				echo "compare.sh: $name, round $round, $part: the load test failed (see $OUT/$name.$round.$part.txt)" >&2
				status=1
			fi
		done
	done
done
exit $status
