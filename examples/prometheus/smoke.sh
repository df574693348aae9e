#!/usr/bin/env bash
# Smoke test of the example: rejects bad flags, serves /metrics on a port of its own
# choosing for a few seconds, shows spyglass_events_total there, and exits 0 by itself.
#   examples/prometheus/smoke.sh <build dir holding prometheus_example>
set -euo pipefail
exe="${1:?usage: smoke.sh <build-dir>}/prometheus_example"
[ -x "$exe" ] || { echo "smoke: no executable $exe" >&2; exit 1; }
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "smoke: $*" >&2
  for f in "$work"/*; do [ -f "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
  exit 1
}

# A flag without its value, a bad value and an unknown flag: usage error (2), nothing served.
for args in "--listen" "--seconds" "--listen 127.0.0.1:0 --push" "--seconds soon" "--seconds -1" "--verbose 1"; do
  # shellcheck disable=SC2086  # split on purpose
  if "$exe" $args >"$work/bad.out" 2>&1; then rc=0; else rc=$?; fi
  [ "$rc" -eq 2 ] || fail "'$args' exited $rc, expected 2"
  grep -q "usage:" "$work/bad.out" || fail "'$args' printed no usage"
done

# Port 0: the example prints the address it got.
"$exe" --listen 127.0.0.1:0 --seconds 3 >"$work/example.out" 2>&1 &
pid=$!
url=
for _ in $(seq 100); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/metrics' "$work/example.out" || true)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || fail "the example exited before serving"
  sleep 0.1
done
[ -n "$url" ] || fail "no address printed"
case "$url" in *:0/metrics) fail "printed port 0: $url" ;; esac

# Events reach /metrics within the collector's flush interval.
found=
for _ in $(seq 50); do
  if curl -sf --noproxy '*' --max-time 5 "$url" >"$work/metrics.txt" &&
     grep -q '^spyglass_events_total{kind="request",name="/users/{id}",status="ok"} [1-9]' "$work/metrics.txt"; then
    found=1
    break
  fi
  sleep 0.1
done
[ -n "$found" ] || fail "no spyglass_events_total line on $url"

# It stops by itself after --seconds, cleanly.
for _ in $(seq 300); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "still running 30 s after --seconds 3"
if wait "$pid"; then rc=0; else rc=$?; fi
pid=
[ "$rc" -eq 0 ] || fail "exited $rc"
echo "prometheus example smoke test passed ($url)"
