#!/usr/bin/env bash
# Fault, soak and model runs; prints one Markdown table row per scenario
# and configuration (RELIABILITY.md quotes them). Loopback only; every
# scenario starts and stops its own server and is bounded in count and time.
#
#   scripts/reliability.sh [SCENARIO...]    # all: soak slow emfile sigterm killed never model
#   QUICK=1 scripts/reliability.sh          # the short forms, as CI runs them
#   CONFIG=shared scripts/reliability.sh    # one configuration (dedicated, shared, "2 workers")
#
# The full run takes about 3.5 minutes for the server scenarios (3 × 60 s of
# them are the slow-reader runs) plus the model test's long variant:
# MODEL_CASES=1000000 cases (default) in MODEL_SHARDS=4 processes at once,
# about 20 minutes; each shard is the same test with its own random seed.
# QUICK=1 takes about 1 minute and skips the model (CI's `cargo test
# --workspace` runs its 10,000 cases). Exit status 1 if any promise was missed.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=${QUICK:-}
[[ $quick == 0 ]] && quick=
want=("$@")
wanted() { ((${#want[@]} == 0)) || [[ " ${want[*]} " == *" $1 "* ]]; }

cargo build -q --release -p demo-server
status=0
servers=()
for s in "${want[@]}"; do [[ $s != model ]] && servers+=("$s"); done
if ((${#want[@]} == 0 || ${#servers[@]} > 0)); then
  python3 scripts/reliability.py target/release/demo-server "${servers[@]}" || status=1
else
  printf '| scenario | config | figure | promise | met |\n|---|---|---|---|---|\n'
fi

if wanted model; then
  if [[ -n $quick ]]; then
    echo "| model | both timer modes | skipped in QUICK mode: \`cargo test --workspace\` runs its 10,000 cases | | |"
  else
    cases=${MODEL_CASES:-1000000}
    shards=${MODEL_SHARDS:-4}
    # By manifest, not by package name (the reactor's package may be renamed).
    bin=$(cargo test -q --release --manifest-path reactor/Cargo.toml --test model --no-run \
      --message-format=json 2>/dev/null |
      python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("executable") and m.get("target", {}).get("name") == "model": print(m["executable"])')
    start=$(date +%s)
    pids=()
    logs=()
    for i in $(seq "$shards"); do
      log=$(mktemp)
      logs+=("$log")
      PROPTEST_CASES=$((cases / shards)) "$bin" -q >"$log" 2>&1 &
      pids+=($!)
    done
    failed=0
    for i in "${!pids[@]}"; do
      wait "${pids[$i]}" || { failed=$((failed + 1)); tail -n 20 "${logs[$i]}" >&2; }
    done
    took=$(($(date +%s) - start))
    total=$((cases / shards * shards))
    if ((failed == 0)); then met=yes; else met="**no**"; status=1; fi
    printf '| model | both timer modes | %s cases (%s shards × %s, own seeds) in %d min %02d s; %s shards failed | no leak, stale, early, duplicate or lost fire in any case | %s |\n' \
      "$total" "$shards" "$((cases / shards))" $((took / 60)) $((took % 60)) "$failed" "$met"
    rm -f "${logs[@]}"
  fi
fi
exit "$status"
