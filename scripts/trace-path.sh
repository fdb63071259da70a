#!/usr/bin/env bash
# Follow one timer through the kernel: the demo server serves one fixed
# stream under `strace -f`, with the reactor's own lifecycle trace on
# (REACTOR_TRACE=1). Prints the syscalls of the heartbeat timer in order,
# from timerfd_create to close, next to the reactor's trace of the same run.
# While that stream is live, and a leaky stream's client has left (its
# timer now an orphan), it also prints the kernel's view of the same fds:
# the heartbeat's and the epoll fd's /proc/PID/fdinfo, `demo-server
# inspect`, and which timerfd the server's GET /debug/fds marks leaked.
# docs/GUIDE.md sections 2 and 3 are this one run, so their fd numbers agree.
#
#   scripts/trace-path.sh [OUT_DIR]
#
# OUT_DIR (default: a new temp dir) keeps the strace logs (one per thread,
# strace.TID; strace.txt is the worker's), the reactor
# trace, what the client received and each excerpt. DEMO_SERVER=path uses
# that binary instead of building target/debug/demo-server. Needs strace,
# curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in strace curl python3; do
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
# -ff: one log per thread, so that no line of the worker's is cut in two
# ("<unfinished ...>" / "<... resumed>") by another thread's syscall.
REACTOR_TRACE=1 strace -ff -qq -e trace="$calls" -o "$out/strace" \
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

# Meanwhile a leaky stream's client comes and goes: the server keeps its
# timer. Wait (at most 5 s) until its socket is gone: two sockets left, the
# listener and the fixed client.
curl -sN --max-time 10 "${url}stream/leaky" >"$out/leaky.txt" &
leaky=$!
for _ in $(seq 200); do grep -q '^event: hello' "$out/leaky.txt" 2>/dev/null && break; sleep 0.05; done
kill "$leaky" 2>/dev/null || true
wait "$leaky" 2>/dev/null || true
for _ in $(seq 100); do
  (($(find "/proc/$pid/fd" -lname 'socket:*' 2>/dev/null | wc -l) <= 2)) && break
  sleep 0.05
done

# The kernel's view now. The heartbeat is the first timer armed EveryAt
# (the shared timer is armed OnceAt); its epoll fd, the one it was added to.
fd=$(sed -n 's/^reactor: timerfd_settime(\([0-9]*\), EveryAt.*/\1/p' "$out/reactor-trace.txt" | head -n 1)
[[ -n $fd ]] || { echo "trace-path.sh: no heartbeat timer in the trace; see $out" >&2; exit 1; }
# The heartbeat's thread (the worker), its log with each line prefixed by
# its thread id, as `strace -f` would.
worker_log() {
  local log
  log=$(grep -l "^timerfd_create(.*) = $fd\$" "$out"/strace.* | head -n 1)
  [[ -n $log ]] || { echo "trace-path.sh: no thread created timerfd $fd; see $out" >&2; exit 1; }
  sed "s/^/${log##*.} /" "$log" >"$out/strace.txt"
}
worker_log
ep=$(sed -n "s/^[0-9]* epoll_ctl(\([0-9]*\), EPOLL_CTL_ADD, $fd, .*/\1/p" "$out/strace.txt" | head -n 1)
cat "/proc/$pid/fdinfo/$fd" >"$out/fdinfo-heartbeat.txt"
cat "/proc/$pid/fdinfo/$ep" >"$out/fdinfo-epoll.txt"
"$bin" inspect "$pid" >"$out/inspect.txt"
# Which timerfd is the orphan: the server's own GET /debug/fds says (its
# first answer may still be pending, so ask again for at most 2 s).
leaked_fds() {
  curl -s "${url}debug/fds" | python3 -c '
import json, sys
print(",".join(str(e["fd"]) for e in json.load(sys.stdin).get("fds", []) if e.get("leaked")))'
}
leaked=
for _ in $(seq 20); do
  leaked=$(leaked_fds || true)
  [[ -n $leaked ]] && break
  sleep 0.1
done

kill "$client" 2>/dev/null || true
wait "$client" 2>/dev/null || true

# Wait (at most 5 s) until the server has dropped the stream's timer: two
# timerfds left, the shared one its housekeeping timers sit on, and the
# orphan.
for _ in $(seq 100); do
  n=$(find "/proc/$pid/fd" -lname 'anon_inode:\[timerfd\]' 2>/dev/null | wc -l)
  [[ $n -le 2 ]] && break
  sleep 0.05
done
kill -TERM "$pid"
wait "$tracer" || true
trap - EXIT
worker_log

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
echo "== while the fixed stream is live, and a leaky stream's client has left =="
echo "\$ cat /proc/\$PID/fdinfo/$fd"
cat "$out/fdinfo-heartbeat.txt"
echo "\$ cat /proc/\$PID/fdinfo/$ep"
cat "$out/fdinfo-epoll.txt"
echo "\$ demo-server inspect \$PID"
cat "$out/inspect.txt"
echo "GET /debug/fds: leaked timerfd(s): ${leaked:-none found}"
echo
echo "full logs in $out"
