#!/usr/bin/env bash
# Run every fuzz target in fuzz/ for a bounded time (cargo fuzz, nightly).
#
#   scripts/fuzz.sh [SECONDS]      # per target; default 60. CI runs 5.
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET) and keeps
# what it learns in fuzz/corpus/TARGET (not committed). A crash stops the run
# with a non-zero exit; its input is in fuzz/artifacts/TARGET/. Reproduce it
# with `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...`, fix
# it, and add the input as a regression test in the crate it concerns (see
# RELIABILITY.md, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
targets=(http_head last_event_id to_itimerspec inspect_fdinfo)

rustup run nightly true 2>/dev/null || {
  echo "fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
}
command -v cargo-fuzz >/dev/null || {
  echo "fuzz.sh: needs cargo-fuzz (cargo install cargo-fuzz)" >&2
  exit 2
}

build=$(mktemp)
cargo +nightly fuzz build -O >"$build" 2>&1 || { cat "$build" >&2; exit 1; }
rm -f "$build"
printf '| target | seconds | runs | corpus | result |\n|---|---:|---:|---:|---|\n'
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
  log=$(mktemp)
  if cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="**crash**: $(grep -m1 -o 'fuzz/artifacts/[^ ]*' "$log" || echo "see $log")"
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  printf '| %s | %s | %s | %s | %s |\n' "$t" "$secs" "${runs:-?}" "$corpus" "$result"
  if [[ $result != ok ]]; then
    grep -E 'panicked|ERROR|SUMMARY' "$log" | head -n 5 >&2
    exit 1
  fi
  rm -f "$log"
done
