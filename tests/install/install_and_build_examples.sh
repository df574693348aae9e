#!/usr/bin/env bash
# Installs a build tree into a temporary prefix and consumes it the way users do:
#   install_and_build_examples.sh <build dir> <source dir> <work dir>
# The build's BUILD_SHARED_LIBS decides which package is checked (the ci preset installs
# the static libraries, the shared preset the shared ones; `make test` runs both). It
# builds every example against the package with find_package and runs them, builds a
# consumer that checks the imported targets (library type, no include directory listed
# twice, no ConcurrentQueue asked of consumers, optional components honoured) with
# find_package(ConcurrentQueue) disabled, and checks that asking for a component that is
# not installed fails with a clear message.
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
find "$prefix" -name spyglassConfig.cmake | grep -q .
test -f "$prefix/include/spyglass/spyglass.hpp"
test -f "$prefix/include/spyglass/version.hpp"

shared=$(sed -n 's/^BUILD_SHARED_LIBS:[A-Z]*=//p' "$build/CMakeCache.txt")
case "${shared^^}" in
  ON | 1 | TRUE | YES) type=SHARED_LIBRARY ;;
  *) type=STATIC_LIBRARY ;;
esac
libdir=$(dirname "$(find "$prefix" -name 'libspyglass_core.*' | head -n 1)")
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build/CMakeCache.txt")
soversion=${version%.*}
echo "== $type package in $prefix"
if [ "$type" = SHARED_LIBRARY ]; then
  # The versioned file, and the SONAME link the loader looks for.
  test -f "$libdir/libspyglass_core.so.$version"
  test -L "$libdir/libspyglass_core.so.$soversion"
  readelf -d "$libdir/libspyglass_core.so.$version" | grep -q "SONAME.*\[libspyglass_core.so.$soversion\]"
  test ! -e "$libdir/libspyglass_core.a"
else
  test -f "$libdir/libspyglass_core.a"
  test -z "$(find "$prefix" -name 'libspyglass_*.so*')"
fi
# The queue is private to the core's sources: neither its finder nor an include of it
# may be installed.
test -z "$(find "$prefix" -name 'FindConcurrentQueue.cmake')"
if grep -rl concurrentqueue "$prefix/include"; then
  echo "an installed header includes ConcurrentQueue" >&2
  exit 1
fi
installed=$(sed -n 's/^# spyglass package config. Components built here: \(.*\)\.$/\1/p' \
            "$(find "$prefix" -name spyglassConfig.cmake)")
installed=${installed//;/ }
echo "installed components: $installed"

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
grep -q "collector: offered=" "$work/quickstart.out"
ls "$work"/spyglass-out/*.jsonl >/dev/null
head -n 3 "$work"/spyglass-out/*.jsonl | grep -v '^==' | grep . | jq -e .kind >/dev/null

echo "== a consumer of the package"
required="core"
for c in jsonl otlp sqlite postgres httplib curl http; do [[ " $installed " == *" $c "* ]] && required="$required;$c"; done
# monitor may or may not be installed (the shared preset leaves it out): optional either way.
cmake -S "$src/tests/install/package_consumer" -B "$work/consumer" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_DISABLE_FIND_PACKAGE_ConcurrentQueue=ON \
      "-DREQUIRED_COMPONENTS=$required" "-DOPTIONAL_COMPONENTS=monitor;nosuchthing" \
      "-DEXPECT_INSTALLED=${installed// /;}" -DEXPECT_TYPE=$type "${launcher[@]}" >"$work/consumer.log" 2>&1 ||
  { cat "$work/consumer.log" >&2; exit 1; }
grep 'spyglass::' "$work/consumer.log"
cmake --build "$work/consumer" -j2 >/dev/null
"$work/consumer/consumer"
"$work/consumer/adapters_consumer"
if [ "$type" = SHARED_LIBRARY ]; then
  ldd "$work/consumer/consumer" | grep -q "libspyglass_core.so.$soversion => $libdir/"
fi

echo "== a component that is not installed"
if cmake -S "$src/tests/install/missing_component" -B "$work/missing" -DCMAKE_PREFIX_PATH="$prefix" \
     >"$work/missing.log" 2>&1; then
  echo "find_package with an unknown component succeeded" >&2
  exit 1
fi
grep -q "component 'nosuchthing' is not part of this installation" "$work/missing.log"
echo "install test passed"
