#!/usr/bin/env bash
# Installs the Debian 12 packages spyglass needs to build, test and benchmark, and the npm
# packages its tests load output with, when any is missing. Runs as root (or through sudo when available); does nothing when all are there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libconcurrentqueue-dev libsimdjson-dev prometheus-cpp-dev libcurl4-openssl-dev
  libsqlite3-dev zlib1g-dev libcpp-httplib-dev libpq-dev postgresql
  googletest libgtest-dev libgmock-dev libbenchmark-dev libspdlog-dev
  clang clang-format jq sqlite3 time strace gzip python3 python3-psutil
  protobuf-compiler prometheus prometheus-pushgateway curl
  liblttng-ust-dev lttng-tools python3-scipy python3-numpy python3-statsmodels python3-aiosmtpd libxml2-utils perl
  binutils chromium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come with a nodejs build that provides it; only ask Debian for it when absent.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -ne 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages the tests use as real consumers (package.json at the top of the tree),
# exactly as package-lock.json pins them; again only when something is missing.
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$root/node_modules/@paulirish/trace_engine/package.json" ] ||
   [ ! -f "$root/node_modules/playwright-core/package.json" ] ||
   [ ! -f "$root/node_modules/tap-parser/package.json" ]; then
  echo "install-deps: npm ci (test peers)"
  (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
