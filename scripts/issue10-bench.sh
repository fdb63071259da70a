#!/usr/bin/env bash
# Issue 10's figures: /metrics throughput and heartbeat delivery with
# 10,000 fds open in the server (5,000 fixed streams: a socket and a timerfd
# each), while `wrk -c4` scrapes /metrics. Loopback only.
#
#   scripts/issue10-bench.sh [SERVER_BINARY] [STREAMS] [SECONDS]
#
# Needs wrk (apt-get install wrk). Builds the release binary and the
# `load` example first unless SERVER_BINARY is given.
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${2:-5000}
secs=${3:-10}
cargo build -q --release -p demo-server --example load
server=${1:-target/release/demo-server}
[[ -x $server ]] || cargo build -q --release -p demo-server
load=target/release/examples/load

log=$(mktemp)
"$server" serve --addr 127.0.0.1:0 --interval 100ms >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
addr=$(sed -n 's|.*listening on http://\([^/]*\)/.*|\1|p' "$log")
echo "server $server (pid $pid) on $addr, heartbeat every 100 ms"

"$load" heartbeats "$addr" "$streams" "$secs" &
loader=$!
sleep 2.5 # the streams are open and the count has started
echo "server fds: $(ls /proc/$pid/fd | wc -l)"
wrk -c4 -t2 -d"${secs}s" "http://$addr/metrics" | grep -E 'Requests/sec|Latency|requests in'
wait $loader
echo "server: $("$load" rss $pid)"
