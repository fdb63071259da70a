#!/usr/bin/env bash
# Follow one timer through the kernel: the demo server serves one fixed
# stream under `strace -f`, with the reactor's own lifecycle trace on
# (REACTOR_TRACE=1). Prints the syscalls of the heartbeat timer in order,
# from timerfd_create to close, next to the reactor's trace of the same run.
#
#   scripts/trace-path.sh [OUT_DIR]
#
# OUT_DIR (default: a new temp dir) keeps the full strace log, the reactor
# trace and what the client received. DEMO_SERVER=path uses that binary
# instead of building target/debug/demo-server. Needs strace and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in strace curl; do
  command -v "$tool" >/dev/null || { echo "trace-path.sh: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done
bin=${DEMO_SERVER:-}
if [[ -z $bin ]]; then
  cargo build -q -p demo-server
  bin=target/debug/demo-server
fi
out=${1:-$(mktemp -d)}
mkdir -p "$out"

calls=timerfd_create,timerfd_settime,epoll_ctl,epoll_wait,epoll_pwait,read,sendto,close
REACTOR_TRACE=1 strace -f -qq -e trace="$calls" -o "$out/strace.txt" \
  "$bin" --addr 127.0.0.1:0 --interval 200ms >"$out/stdout.txt" 2>"$out/reactor-trace.txt" &
tracer=$!
trap 'kill "$tracer" 2>/dev/null || true' EXIT

# Wait (at most 10 s) for the banner: the URL and the server's PID.
for _ in $(seq 200); do grep -q '^  pid ' "$out/stdout.txt" 2>/dev/null && break; sleep 0.05; done
url=$(grep -o 'http://[^ ]*/' "$out/stdout.txt" | head -n 1)
pid=$(sed -n 's/^  pid \([0-9]*\),.*/\1/p' "$out/stdout.txt")
[[ -n $url && -n $pid ]] || { echo "trace-path.sh: the server did not start; see $out" >&2; exit 1; }

# One client on /stream/fixed: the opening, two heartbeats, then it leaves.
# It leaves on what it has received (at most 10 s), not after a fixed time:
# on a loaded machine, under strace, a fixed 0.5 s can end before the first
# heartbeat arrives.
curl -sN --max-time 10 "${url}stream/fixed" >"$out/stream.txt" &
client=$!
for _ in $(seq 200); do
  (($(grep -c '^id: ' "$out/stream.txt" 2>/dev/null || true) >= 2)) && break
  sleep 0.05
done
kill "$client" 2>/dev/null || true
wait "$client" 2>/dev/null || true

# Wait (at most 5 s) until the server has dropped the stream's timer: one
# timerfd left, the shared one its housekeeping timers sit on.
for _ in $(seq 100); do
  n=$(find "/proc/$pid/fd" -lname 'anon_inode:\[timerfd\]' 2>/dev/null | wc -l)
  [[ $n -le 1 ]] && break
  sleep 0.05
done
kill -TERM "$pid"
wait "$tracer" || true
trap - EXIT

# The heartbeat timer is the one armed EveryAt (the shared timer is armed OnceAt).
fd=$(sed -n 's/^reactor: timerfd_settime(\([0-9]*\), EveryAt.*/\1/p' "$out/reactor-trace.txt" | head -n 1)
[[ -n $fd ]] || { echo "trace-path.sh: no heartbeat timer in the trace; see $out" >&2; exit 1; }

echo "== strace -f: the heartbeat timerfd ($fd), from create to close =="
awk -v fd="$fd" '
  /epoll_pwait|epoll_wait/ && /= [1-9]/ { wait = $0; next }
  $0 ~ "timerfd_create\\(.*= " fd "$"            { print; next }
  $0 ~ "timerfd_settime\\(" fd ","               { print; next }
  $0 ~ "epoll_ctl\\([0-9]+, EPOLL_CTL_(ADD|DEL), " fd "," { print; next }
  $0 ~ "read\\(" fd ","                          { if (wait != "") print wait; wait = ""; print; beat = 1; next }
  beat && /sendto\([0-9]+, "id: /                { print; beat = 0; next }
  $0 ~ "close\\(" fd "\\)"                       { print; exit }
' "$out/strace.txt" | cut -c1-200
echo
echo "== the reactor's lifecycle trace of the same run (REACTOR_TRACE=1) =="
grep -E "\($fd[,)]|= $fd\$|, $fd[,)]" "$out/reactor-trace.txt" | head -n 12
echo
echo "full logs in $out"
