#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz and runs each for N seconds.
# Usage: fuzz/run.sh [seconds-per-target=20] [target ...]
# Env: SPYGLASS_FUZZ_BUILD_DIR (default <repo>/build-fuzz), SPYGLASS_FUZZ_JOBS (default 2).
# Exits non-zero when a build fails or a fuzzer finds a crash (its reproducer is left in
# the build directory and named in the output).
set -euo pipefail

seconds="${1:-20}"
shift || true
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${SPYGLASS_FUZZ_BUILD_DIR:-$root/build-fuzz}"
jobs="${SPYGLASS_FUZZ_JOBS:-2}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_traceparent fuzz_redact fuzz_json_escape fuzz_jsonl_line fuzz_otlp_encode fuzz_prometheus_exposition fuzz_proc)
fi

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# Only the fuzzers are wanted: everything else optional is off so that configuring stays quick
# (the OTLP and Prometheus components are on because they have fuzzers of their own).
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSPYGLASS_BUILD_FUZZERS=ON -DSPYGLASS_WERROR=ON -DSPYGLASS_BUILD_TESTS=OFF \
  -DSPYGLASS_BUILD_BENCHMARKS=OFF -DSPYGLASS_BUILD_EXAMPLES=OFF -DSPYGLASS_INSTALL=OFF \
  -DSPYGLASS_WITH_JSONL=OFF -DSPYGLASS_WITH_PROMETHEUS=ON -DSPYGLASS_WITH_OTLP=ON \
  -DSPYGLASS_WITH_MONITOR=OFF "${launcher[@]}" >/dev/null
cmake --build "$build" --target "${targets[@]}" -j "$jobs"

status=0
for t in "${targets[@]}"; do
  name="${t#fuzz_}"
  corpus="$build/fuzz/corpus/$name"
  mkdir -p "$corpus" "$build/fuzz/artifacts"
  # Seeds are copied, so the checked-in corpus is never modified by a run.
  if [ -d "$root/fuzz/corpus/$name" ]; then cp -n "$root/fuzz/corpus/$name"/* "$corpus"/ 2>/dev/null || true; fi
  args=(-max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$build/fuzz/artifacts/$t-")
  if [ -f "$root/fuzz/$name.dict" ]; then args+=(-dict="$root/fuzz/$name.dict"); fi
  echo "== $t for ${seconds}s"
  if ! "$build/fuzz/$t" "${args[@]}" "$corpus"; then
    echo "== $t FAILED (reproducers in $build/fuzz/artifacts/)" >&2
    status=1
  fi
done
exit $status
