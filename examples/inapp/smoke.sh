#!/usr/bin/env bash
# Smoke test of the example: rejects bad flags, serves / and /metrics.json (token
# required) on a port of its own choosing, and exits 0 by itself after --seconds.
#   examples/inapp/smoke.sh <build dir holding inapp_example>
set -euo pipefail
exe="${1:?usage: smoke.sh <build-dir>}/inapp_example"
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

for args in "--listen" "--seconds soon" "--requests -1" "--verbose 1" "--listen nowhere"; do
  # shellcheck disable=SC2086  # split on purpose
  if "$exe" $args >"$work/bad.out" 2>&1; then rc=0; else rc=$?; fi
  [ "$rc" -ne 0 ] || fail "'$args' exited 0"
done

"$exe" --listen 127.0.0.1:0 --token smoke --seconds 3 >"$work/example.out" 2>&1 &
pid=$!
url=
for _ in $(seq 100); do
  url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$work/example.out" || true)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || fail "the example exited before serving"
  sleep 0.1
done
[ -n "$url" ] || fail "no address printed"
curl -sf --noproxy '*' --max-time 5 "$url" >"$work/page.html" || fail "no page on $url"
grep -q '<title>spyglass: live</title>' "$work/page.html" || fail "not the page on $url"
code=$(curl -s --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}' "${url}metrics.json")
[ "$code" = 401 ] || fail "/metrics.json without the token answered $code"
found=
for _ in $(seq 50); do
  if curl -sf --noproxy '*' --max-time 5 -H 'Authorization: Bearer smoke' "${url}metrics.json" >"$work/m.json" &&
     jq -e '.series[] | select(.kind == "request" and .name == "/users/{id}" and .count > 0)' "$work/m.json" >/dev/null; then
    found=1
    break
  fi
  sleep 0.1
done
[ -n "$found" ] || fail "no /users/{id} series in ${url}metrics.json"
for _ in $(seq 300); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "still running 30 s after --seconds 3"
if wait "$pid"; then rc=0; else rc=$?; fi
pid=
[ "$rc" -eq 0 ] || fail "exited $rc"
echo "inapp example smoke test passed ($url)"
