#!/usr/bin/env bash
# The reactor's timeline of a few heartbeats of the demo server, drawn as
# the guide's picture (docs/timeline.svg): one fixed stream, and a leaky
# stream whose client has left, so that its timer wakes the loop for nobody.
#
#   scripts/trace-timeline.sh [OUT_DIR]
#
# The server runs with REACTOR_TRACE=chrome:OUT_DIR/timeline.json (open it
# in https://ui.perfetto.dev too); the leaked timer's fd is read from the
# server's own /debug/fds; `demo-server timeline` draws the worker's track
# over 600 ms around the fixed client's departure. Needs curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "trace-timeline.sh: $tool is not installed" >&2; exit 2; }
done
cargo build -q --release -p demo-server
bin=target/release/demo-server
out=${1:-$(mktemp -d)}
mkdir -p "$out"
trace="$out/timeline.json"

REACTOR_TRACE="chrome:$trace" "$bin" --addr 127.0.0.1:0 --interval 100ms >"$out/stdout.txt" 2>"$out/stderr.txt" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q '^  pid ' "$out/stdout.txt" 2>/dev/null && break; sleep 0.05; done
url=$(grep -o 'http://[^ ]*/' "$out/stdout.txt" | head -n 1)
[[ -n $url ]] || { echo "trace-timeline.sh: the server did not start; see $out" >&2; exit 1; }

# A leaky stream whose client leaves after its opening: an orphan from now on.
curl -sN --max-time 0.15 "${url}stream/leaky" >/dev/null || true
# A fixed stream that stays for half a second, then leaves too.
curl -sN --max-time 0.5 "${url}stream/fixed" >"$out/fixed.txt" || true
sleep 0.4

# The leaked timer, as the server itself reports it.
fds() { curl -s "${url}debug/fds"; }
for _ in $(seq 50); do fds | grep -q '"leaked":true' && break; sleep 0.1; done
leaked=$(fds | python3 -c 'import json,sys; print(next(e["fd"] for e in json.load(sys.stdin)["fds"] if e.get("leaked")))')
kill -TERM "$server"
wait "$server" || true
trap - EXIT

# The window: from 250 ms before the fixed client left to 350 ms after.
left=$(python3 - "$trace" "$leaked" <<'PY'
import json, sys
text = open(sys.argv[1]).read().rstrip().rstrip(',') + ']'
events = json.loads(text)
t0 = min(e["ts"] for e in events if "ts" in e)
# The heartbeats' timerfds (a 100 ms period); the fixed one is not the leaked one.
beats = [e["args"]["fd"] for e in events if e.get("name") == "timerfd_settime"
         and "period: 100ms" in e["args"].get("setting", "")]
fixed = next(fd for fd in beats if fd != int(sys.argv[2]))
gone = next(e["ts"] for e in events if e.get("name") == "close" and e["args"]["fd"] == fixed)
print(max(0, round((gone - t0) / 1000 - 250)))
PY
)
# The shared clock's timerfd (housekeeping: stats, read deadlines) is the
# one set to a deadline rather than a period.
shared=$(python3 - "$trace" <<'PY'
import json, sys
text = open(sys.argv[1]).read().rstrip().rstrip(',') + ']'
print(next((e["args"]["fd"] for e in json.loads(text) if e.get("name") == "timerfd_settime"
            and "deadline_ns" in e["args"]), -1))
PY
)
"$bin" timeline "$trace" --svg "$out/timeline.svg" --thread worker --from-ms "$left" --span-ms 600 \
  --label "$leaked=leaked timer" --label "$shared=shared clock"
echo "the leaked timer is fd $leaked; trace: $trace; picture: $out/timeline.svg"
