#!/usr/bin/env bash
# Draw CPU per heartbeat and RSS per stream against the number of streams,
# one curve per server, from the TSV that `sse-load --tsv FILE` writes.
#
#   scripts/plot-scaling.sh benches/results/sse-scaling.tsv docs/sse-scaling.svg
#
# Needs gnuplot (`apt-get install -y gnuplot-nox`).
set -euo pipefail
tsv=${1:?usage: plot-scaling.sh SCALING.tsv OUT.svg}
svg=${2:?usage: plot-scaling.sh SCALING.tsv OUT.svg}
servers=$(tail -n +2 "$tsv" | cut -f2 | awk '!seen[$0]++' | tr '\n' ' ')
plot() { # column, for each server: its rows of $tsv
  local col=$1 sep=""
  for s in $servers; do
    printf '%s"< awk -F\\"\\t\\" %s" using 1:%s with linespoints linewidth 2 pointtype 7 title "%s"' \
      "$sep" "'\$2==\\\"$s\\\"' $tsv" "$col" "$s"
    sep=", "
  done
}
gnuplot <<GP
set terminal svg size 900,400 dynamic font "sans,12" background rgb "white"
set output "$svg"
set multiplot layout 1,2
set key bottom right
set grid
set xlabel "open streams (heartbeat every 100 ms)"
set ylabel "server CPU per heartbeat (µs)"
set yrange [0:*]
plot $(plot 3)
set ylabel "server RSS per stream (KiB)"
set logscale y
set yrange [*:*]
plot $(plot 4)
unset multiplot
GP
echo "wrote $svg" >&2
