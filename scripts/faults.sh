#!/usr/bin/env bash
# The fault table (RELIABILITY.md, "Failed system calls"): every call site of
# demo-server and the reactor made to fail under `strace -e inject`, in each
# configuration, with what came of it: recovered, reported, or exited with a
# message; never a silent stall, a spin, a hang, a leak or a crash (a row that
# sees one prints **FAIL**, and this script exits 1).
#
#   scripts/faults.sh            # every row, in dedicated, shared and 2-worker configurations (~20 s)
#   QUICK=1 scripts/faults.sh    # dedicated only (what CI runs)
#
# Needs strace; without it, it says SKIPPED and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p demo-server --bins --example faults
./target/release/examples/faults ${QUICK:+--quick}
