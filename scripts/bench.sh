#!/usr/bin/env bash
# Runs every benchmark executable of a build tree and keeps the raw results as JSON next to
# the console output, under build/<preset>/bench-results/.
set -euo pipefail
build=${1:-build/bench}
out="$build/bench-results"
mkdir -p "$out"
for exe in $(find "$build/benchmarks" -type f -executable -name 'spyglass_bench_*' | sort); do
  name=$(basename "$exe")
  echo "== $name"
  "$exe" --benchmark_out="$out/$name.json" --benchmark_out_format=json "${@:2}"
done
