#!/usr/bin/env bash
# The main job: runs the quickstart example, which serves simulated requests on four
# threads, exports JSONL to ./spyglass-out/ and prints a latency table. When the monitor
# is built, it runs the quickstart twice under `spyglass run` and prints the run history.
set -euo pipefail
build=${1:-build/default}
quickstart="$build/examples/quickstart/quickstart"
cli="$build/src/cli/spyglass"
if [ -x "$cli" ]; then
  "$cli" run --label quickstart -- "$quickstart"
  "$cli" run --label quickstart -- "$quickstart" >/dev/null
  "$cli" history --label quickstart --limit 5
else
  "$quickstart"
fi
echo
echo "JSONL files:"
ls -l spyglass-out/*.jsonl | tail -n 3
echo "first event:"
head -n 1 "$(ls -t spyglass-out/*.jsonl | head -n 1)"
