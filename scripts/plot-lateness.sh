#!/usr/bin/env bash
# Draw the lateness sweep (p99 against the expiry rate, one curve per
# contender) from the TSV that `lateness --sweep ... --tsv FILE` writes.
#
#   scripts/plot-lateness.sh benches/results/lateness-sweep.tsv docs/lateness-sweep.svg
#
# Needs gnuplot (`apt-get install -y gnuplot-nox`).
set -euo pipefail
tsv=${1:?usage: plot-lateness.sh SWEEP.tsv OUT.svg}
svg=${2:?usage: plot-lateness.sh SWEEP.tsv OUT.svg}
cols=$(head -1 "$tsv" | awk -F'\t' '{print NF}')
gnuplot <<GP
set terminal svg size 900,440 dynamic font "sans,12" background rgb "white"
set output "$svg"
set datafile separator "\t"
set key autotitle columnhead outside right top
set logscale xy
set xlabel "expiries per second (N timers at 1 ms, phases spread)"
set ylabel "p99 lateness (µs)"
set grid
set format x "%.0s%c"
set arrow from graph 0, first 100 to graph 1, first 100 nohead dashtype 2 linecolor rgb "gray40"
set label "100 µs" at graph 0.01, first 120 textcolor rgb "gray40"
plot for [c=2:$cols] "$tsv" using 1:c with linespoints linewidth 2 pointtype 7 pointsize 0.6
GP
echo "wrote $svg" >&2
