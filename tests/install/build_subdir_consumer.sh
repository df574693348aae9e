#!/usr/bin/env bash
# Builds a consumer that pulls spyglass in with add_subdirectory and runs it.
set -euo pipefail
src=$1 work=$2
rm -rf "$work"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src/tests/install/subdir_consumer" -B "$work" -G Ninja -DSPYGLASS_SOURCE_DIR="$src" \
      -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
# The consumer and what it links: building every target of the tree would compile the
# whole project again for nothing the consumer uses.
cmake --build "$work" --target consumer -j2 >/dev/null
"$work/consumer"
