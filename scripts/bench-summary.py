#!/usr/bin/env python3
"""Turn criterion's estimates (benches/target/criterion) into the Markdown
ratio tables of BENCHMARKS.md. Medians, in nanoseconds; ratios are ours
divided by the floor or by the peer (below 1.00 means faster)."""
import glob
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "benches/target/criterion"
m = {}  # (group, function, value) -> median ns
for path in glob.glob(os.path.join(root, "**", "new", "benchmark.json"), recursive=True):
    with open(path) as f:
        b = json.load(f)
    with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
        e = json.load(f)
    m[(b["group_id"], b.get("function_id") or "", b.get("value_str") or "")] = e["median"]["point_estimate"]


def get(g, f, v=""):
    return m.get((g, f, v))


def fmt(x):
    return "–" if x is None else (f"{x:.0f}" if x >= 100 else f"{x:.1f}")


def ratio(a, b):
    return "–" if a is None or b is None else f"{a / b:.2f}"


print("### Syscall layer (ns per call, median)\n")
print("| call | libc (floor) | timerfd-sys | nix | timerfd crate | ours / libc | ours / nix | ours / timerfd |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for g in ["settime_relative", "settime_absolute", "settime_disarm", "gettime", "read_eagain", "read_expired", "create_close"]:
    libc, ours, nix, tfd = (get(g, f) for f in ["libc", "timerfd-sys", "nix", "timerfd"])
    print(f"| {g} | {fmt(libc)} | {fmt(ours)} | {fmt(nix)} | {fmt(tfd)} | {ratio(ours, libc)} | {ratio(ours, nix)} | {ratio(ours, tfd)} |")

print("\n### Reactor dispatch (ns per ready timer event, median)\n")
print("| ready timers per turn | raw epoll (floor) | reactor | mio + timerfd | reactor / floor | reactor / mio |")
print("|---:|---:|---:|---:|---:|---:|")
for n in ["1", "64", "1024"]:
    k = int(n)
    raw, ours, mio = (get("dispatch_per_event", f, n) for f in ["raw-epoll", "reactor", "mio"])
    per = lambda x: None if x is None else x / k
    print(f"| {n} | {fmt(per(raw))} | {fmt(per(ours))} | {fmt(per(mio))} | {ratio(ours, raw)} | {ratio(ours, mio)} |")

print("\n### Cross-thread wake (ns per round trip: two wakes, median)\n")
ours, mio = get("cross_thread_wake_round_trip", "reactor::Waker"), get("cross_thread_wake_round_trip", "mio::Waker")
print("| reactor::Waker | mio::Waker | reactor / mio |")
print("|---:|---:|---:|")
print(f"| {fmt(ours)} | {fmt(mio)} | {ratio(ours, mio)} |")

print("\n### Timer churn: arm + cancel (ns, median)\n")
print("| live timers | shared set+disarm | shared add+drop | dedicated set+disarm | dedicated add+drop | tokio reset+poll | tokio add+drop | shared add+drop / tokio add+drop |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|")
for n in ["1000", "100000", "1000000"]:
    row = [get("arm_cancel", f, n) for f in ["reactor-shared set+disarm", "reactor-shared add+drop", "reactor-dedicated set+disarm", "reactor-dedicated add+drop", "tokio reset+poll", "tokio add+drop"]]
    print(f"| {int(n):,} | " + " | ".join(fmt(x) for x in row) + f" | {ratio(row[1], row[5])} |")
