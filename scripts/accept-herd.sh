#!/usr/bin/env bash
# How many accept4 calls 300 sequential connections cost a server with two
# workers, and how many of them found nothing (EAGAIN): the thundering herd
# that EPOLLEXCLUSIVE on the listener's dups removes. Loopback only, bounded.
#
#   scripts/accept-herd.sh [DEMO_SERVER_BINARY]     # default: build target/release/demo-server
set -euo pipefail
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "accept-herd.sh: strace is not installed" >&2; exit 2; }
bin=${1:-}
if [[ -z $bin ]]; then
  cargo build -q --release -p demo-server
  bin=target/release/demo-server
fi
out=$(mktemp -d)
strace -f -c -e trace=accept4 -o "$out/strace.txt" "$bin" --addr 127.0.0.1:0 --workers 2 >"$out/stdout.txt" 2>/dev/null &
tracer=$!
trap 'kill "$tracer" 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q 'listening on' "$out/stdout.txt" 2>/dev/null && break; sleep 0.05; done
url=$(grep -o 'http://[^ ]*/' "$out/stdout.txt" | head -n 1)
[[ -n $url ]] || { echo "accept-herd.sh: the server did not start; see $out" >&2; exit 1; }
python3 - "$url" <<'PY'
import socket, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
for _ in range(300):
    s = socket.create_connection((u.hostname, u.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    s.recv(100)
    s.close()
PY
pid=$(sed -n 's/^  pid \([0-9]*\),.*/\1/p' "$out/stdout.txt")
kill -TERM "${pid:-$tracer}" 2>/dev/null || true
wait "$tracer" 2>/dev/null || true
trap - EXIT
# strace -c's row: % time, seconds, usecs/call, calls, errors, syscall.
read -r calls errors < <(awk '$NF == "accept4" { print $(NF-2), $(NF-1) }' "$out/strace.txt")
echo "300 connections, 2 workers: accept4 calls ${calls:-?}, of which EAGAIN ${errors:-0}"
rm -rf "$out"
