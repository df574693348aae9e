#!/usr/bin/env bash
# Fails when a tracked C++ file differs from clang-format's output. Compares the output
# (the same verdict as `clang-format --dry-run --Werror`, with one line per file).
set -euo pipefail
bad=0
while IFS= read -r f; do
  if ! clang-format --style=file "$f" | cmp -s - "$f"; then
    echo "not formatted: $f"
    bad=1
  fi
done < <(git ls-files '*.hpp' '*.cpp' '*.h' '*.cc')
[ "$bad" -eq 0 ] || { echo "run: make format" >&2; exit 1; }
