#!/usr/bin/env bash
# Issue 10's figures, each against a fresh server on loopback. Prints
# figures; asserts nothing (timing belongs here, not in tests).
#
#   scripts/issue10-bench.sh MODE [SERVER_BINARY]
#
#   metrics    5,000 fixed streams (10,000 server fds) at 100 ms; wrk -c4 on
#              /metrics for 10 s meanwhile; heartbeats per stream (needs wrk)
#   scrapes    the same streams; 5 batches of 200 pipelined GET /metrics
#   pipeline   --idle-timeout 2s; 3,000 clients pipeline 20 GET / and never
#              read; server RSS and sockets at 1.5 s and 7.5 s
#   slow       --interval 2ms, shared timers; 1,000 streams that never read;
#              server VmHWM, every 2 s for 12 s
#   backlog    nofile 64, filled to EMFILE; 1,000 clients knock at once;
#              time until all are answered; /metrics status at EMFILE
#   instances  a second instance on the same port; 200 clients: who got them
#
# SERVER_BINARY defaults to this checkout's release build (built first);
# pass another build to compare before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: scripts/issue10-bench.sh MODE [SERVER_BINARY]}
cargo build -q --release -p demo-server --example load
server=${2:-}
if [[ -z $server ]]; then
  cargo build -q --release -p demo-server
  server=target/release/demo-server
fi
load=target/release/examples/load
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null' EXIT

# start [PRLIMIT...] -- ARGS: a server on a free port; sets $pid and $addr.
start() {
  local log
  log=$(mktemp)
  "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
  addr=$(sed -n 's|.*listening on http://\([^/]*\)/.*|\1|p' "$log")
  # The server sets its own soft fd limit (--fd-limit): $pid is the server.
  echo "server $server (pid $pid) on $addr: ${*:2}"
}
rss() { "$load" rss "$pid"; }
sockets() { ls -l "/proc/$pid/fd" | grep -c socket; }

case $mode in
metrics | scrapes)
  start "$server" serve --addr 127.0.0.1:0 --interval 100ms
  "$load" heartbeats "$addr" 5000 10 &
  loader=$!
  sleep 2.5 # the streams are open and the count has started
  echo "server fds: $(ls "/proc/$pid/fd" | wc -l)"
  if [[ $mode == metrics ]]; then
    wrk -c4 -t2 -d10s "http://$addr/metrics" | grep -E 'Requests/sec|Latency|requests in'
  else
    for _ in 1 2 3 4 5; do "$load" scrapes "$addr" 200; done
  fi
  wait "$loader"
  ;;
pipeline)
  start "$server" serve --addr 127.0.0.1:0 --idle-timeout 2s
  echo "idle: $(rss)"
  "$load" pipeline "$addr" 3000 20 >/dev/null &
  pids+=($!)
  sleep 1.5
  echo "t=1.5s: $(rss), $(sockets) sockets"
  sleep 6
  echo "t=7.5s: $(rss), $(sockets) sockets"
  ;;
slow)
  start "$server" serve --addr 127.0.0.1:0 --interval 2ms --timer-mode shared
  echo "idle: $(rss)"
  "$load" slow "$addr" 1000 >/dev/null &
  pids+=($!)
  for t in 2 4 6 8 10 12; do
    sleep 2
    active=$(curl -s "http://$addr/metrics" | sed -n 's/^demo_server_streams_active{route="fixed"} //p')
    echo "t=${t}s: $(rss), $active streams"
  done
  ;;
backlog)
  start "$server" serve --addr 127.0.0.1:0 --fd-limit 64 --max-conns 1000
  "$load" slow "$addr" 60 >/dev/null &
  pids+=($!)
  sleep 1
  echo "server fds: $(ls "/proc/$pid/fd" | wc -l)"
  timeout 120 "$load" backlog "$addr" 1000
  echo "/metrics at EMFILE: $(curl -s -o /dev/null -w '%{http_code}' -m 5 "http://$addr/metrics")"
  ;;
instances)
  start "$server" serve --addr 127.0.0.1:0 --interval 1s
  "$server" serve --addr "$addr" --interval 2s >/dev/null 2>"${TMPDIR:-/tmp}/second.err" &
  second=$!
  pids+=("$second")
  sleep 0.5
  if kill -0 "$second" 2>/dev/null; then
    echo "the second instance is running"
  else
    echo "the second instance exited: $(cat "${TMPDIR:-/tmp}/second.err")"
  fi
  one=0 two=0
  for _ in $(seq 200); do
    case $(curl -sN -m 0.1 "http://$addr/stream/fixed" | grep -o '"interval_ms":[0-9]*' | head -1) in
    *1000) one=$((one + 1)) ;;
    *2000) two=$((two + 1)) ;;
    esac
  done
  echo "200 clients: $one to the first instance, $two to the second"
  ;;
*)
  echo "unknown mode $mode: metrics, scrapes, pipeline, slow, backlog or instances" >&2
  exit 2
  ;;
esac
