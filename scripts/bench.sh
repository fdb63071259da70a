#!/usr/bin/env bash
# Regenerate every figure in BENCHMARKS.md on this machine: about 45 minutes
# on 2 cores, most of it the lateness, load and C-floor runs (add about 5
# minutes to compile the comparison crates the first time). The C event
# loops of the lateness step need libsystemd-dev, libev-dev, libuv1-dev and
# liburing-dev (apt); one whose library is missing is skipped, saying so.
# Raw outputs go to benches/results/; BENCHMARKS.md quotes them.
#
#   scripts/bench.sh            # everything
#   QUICK=1 scripts/bench.sh    # shorter runs, for trying the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
out=benches/results
mkdir -p "$out"
secs=${QUICK:+2}; secs=${secs:-5}
load_secs=${QUICK:+3}; load_secs=${load_secs:-10}

step() { printf '\n==> %s\n' "$*" >&2; }

step "build (release): demo-server, benches and peers"
cargo build -q --release -p demo-server
(cd benches && cargo build -q --release --bins --benches)

step "machine"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "kernel: $(uname -r)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
  echo "rustc: $(rustc --version)"
  echo "fd limit: $(ulimit -n)"
} | tee "$out/machine.txt"

step "1. syscall layer: criterion, then interleaved timing, then callgrind instruction counts"
(cd benches && cargo bench -q --bench syscalls) >"$out/criterion-syscalls.txt" 2>&1
(cd benches && ./target/release/interleave) | tee "$out/interleave.md"
{
  echo "| call | libc | timerfd-sys | nix | timerfd |"
  echo "|---|---:|---:|---:|---:|"
  for op in set disarm get read; do
    row="| $op"
    for imp in libc timerfd-sys nix timerfd; do
      count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null benches/target/release/callcount "$imp" "$op" "$1" 2>&1 | sed -n 's/.*Collected : //p'; }
      a=$(count 0); b=$(count 10000)
      row="$row | $(( (b - a) / 10000 ))"
    done
    echo "$row |"
  done
} | tee "$out/callgrind.md"

step "2. reactor: dispatch (interleaved, and callgrind instructions per event), then criterion"
(cd benches && ./target/release/dispatch-count time) | tee "$out/dispatch.md"
{
  echo "| ready timers per turn | raw epoll | reactor | mio + timerfd |"
  echo "|---:|---:|---:|---:|"
  for n in 1 64 1024; do
    it=$(( 20000 / n )); [[ $it -lt 20 ]] && it=20
    row="| $n"
    for imp in raw reactor mio; do
      count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null benches/target/release/dispatch-count count "$imp" "$n" "$1" 2>&1 | sed -n 's/.*Collected : //p'; }
      a=$(count 0); b=$(count "$it")
      row="$row | $(( (b - a) / (it * n) ))"
    done
    echo "$row |"
  done
} | tee "$out/dispatch-callgrind.md"
(cd benches && cargo bench -q --bench reactor) >"$out/criterion-reactor.txt" 2>&1
(cd benches && cargo bench -q --bench churn) 2>&1 | tee "$out/criterion-churn.txt" | grep -E '^memory|skipped' || true
python3 scripts/bench-summary.py benches/target/criterion | tee "$out/criterion.md"

step "3. lateness: the C floors, the reactor (both modes), tokio, thread::sleep and the C event loops (sd-event, libev, libuv, io_uring, epoll_pwait2) at 10 and 20 x 1 ms and 100 x 10 ms, alternating; then with a 1 ms leeway; then the saturation sweep and its plot"
lat_rounds=${QUICK:+1}; lat_rounds=${lat_rounds:-5}
sweep_rounds=${QUICK:+1}; sweep_rounds=${sweep_rounds:-1}
sweep_secs=${QUICK:+0.5}; sweep_secs=${sweep_secs:-2}
(cd benches && ./target/release/lateness --loads 10x1ms,20x1ms,100x10ms --secs 2 --rounds "$lat_rounds") | tee "$out/lateness.md"
(cd benches && ./target/release/lateness --loads 10x1ms,100x10ms,100x10000019ns --secs 2 --rounds "$lat_rounds" \
  --leeway 1ms --contenders "C,reactor,sd-event,libev,libuv") | tee "$out/lateness-leeway.md"
(cd benches && ./target/release/lateness --sweep 5,10,20,30,40,50,70,100,150,200,300,500 --secs "$sweep_secs" \
  --rounds "$sweep_rounds" --tsv results/lateness-sweep.tsv) | tee "$out/lateness-sweep.md"
scripts/plot-lateness.sh "$out/lateness-sweep.tsv" docs/lateness-sweep.svg

step "3b. shared-timer churn, fire and memory against tokio and calloop, interleaved"
(cd benches && ./target/release/churn-race ${QUICK:+--sizes 1000,100000 --rounds 3}) | tee "$out/churn-race.md"

step "4. SSE load: 1,000 and 5,000 streams at 100 ms, ${load_secs}s each"
(cd benches && ./target/release/sse-load --streams 1000,5000 --secs "$load_secs") | tee "$out/sse-load.md"

step "4b. the C floor: 2,000 streams at 100 ms, the demo server against scripts/sse-floor.c in each timer mode, alternating"
rounds=${QUICK:+2}; rounds=${rounds:-5}
(cd benches && ./target/release/sse-load --streams 2000 --secs "$secs" --rounds "$rounds" \
  --servers c-dedicated,demo-dedicated,c-shared,demo-shared) | tee "$out/sse-floor.md"
(cd benches && ./target/release/sse-load --streams 2000 --secs 15 --rounds "$rounds" --scrape-every 15s \
  --servers c-dedicated,demo-dedicated,c-shared,demo-shared) | tee "$out/sse-scrape-15s.md"
(cd benches && ./target/release/sse-load --streams 2000 --secs 3 --strace \
  --servers c-dedicated,demo-dedicated,c-shared,demo-shared) | tee "$out/sse-floor-strace.md"
(cd benches && ./target/release/sse-load --streams 2000 --secs 4 --perf \
  --servers c-dedicated,demo-dedicated,c-shared,demo-shared) | tee "$out/sse-floor-perf.md"

step "4c. scaling: CPU per heartbeat and RSS per stream at 1,000, 5,000 and 9,000 streams, both modes and axum, drawn"
scale_rounds=${QUICK:+1}; scale_rounds=${scale_rounds:-2}
(cd benches && ./target/release/sse-load --streams 1000,5000,9000 --secs "$secs" \
  --rounds "$scale_rounds" --servers demo-dedicated,demo-shared,axum --tsv results/sse-scaling.tsv) \
  | tee "$out/sse-scaling.md"
scripts/plot-scaling.sh "$out/sse-scaling.tsv" docs/sse-scaling.svg

step "5. the loopback TCP send under every heartbeat"
gcc -O2 -o "$out/send-floor" scripts/send-floor.c
"$out/send-floor" | tee "$out/send-floor.txt"
rm -f "$out/send-floor"

step "6. cross-thread messages: reactor channel, mpsc + Waker, calloop"
(cd benches && ./target/release/channel) | tee "$out/channel.md"

step "done: raw results in $out"
