#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, builds every example against it with
# find_package, runs them, and checks that asking for a component that is not installed
# fails with a clear message.
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
find "$prefix" -name spyglassConfig.cmake | grep -q .
test -f "$prefix/include/spyglass/spyglass.hpp"
test -f "$prefix/include/spyglass/version.hpp"

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
for dir in "$src"/examples/*/; do
  name=$(basename "$dir")
  [ -f "$dir/CMakeLists.txt" ] || continue
  echo "== example $name"
  cmake -S "$dir" -B "$work/ex-$name" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
        "${launcher[@]}" >/dev/null
  cmake --build "$work/ex-$name" -j2 >/dev/null
  # Each example is run by its own test elsewhere too; here it must at least start and exit 0.
  if [ -x "$dir/smoke.sh" ]; then
    (cd "$work/ex-$name" && "$dir/smoke.sh" "$work/ex-$name")
  fi
done

echo "== quickstart from the installed package"
(cd "$work" && "$work/ex-quickstart/quickstart" >"$work/quickstart.out")
grep -q "collector: enqueued=" "$work/quickstart.out"
ls "$work"/spyglass-out/*.jsonl >/dev/null
head -n 3 "$work"/spyglass-out/*.jsonl | grep -v '^==' | grep . | jq -e .kind >/dev/null

echo "== a component that is not installed"
if cmake -S "$src/tests/install/missing_component" -B "$work/missing" -DCMAKE_PREFIX_PATH="$prefix" \
     >"$work/missing.log" 2>&1; then
  echo "find_package with an unknown component succeeded" >&2
  exit 1
fi
grep -q "component 'nosuchthing' is not part of this installation" "$work/missing.log"
echo "install test passed"
