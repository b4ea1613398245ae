#!/usr/bin/env bash
# Installs everything usageDb needs to build and test on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake pkg-config ninja-build
  libsimdjson-dev libzstd-dev libxxhash-dev libcli11-dev libfmt-dev
  libgtest-dev libgmock-dev librapidcheck-dev libbenchmark-dev
  libboost-dev libthrift-dev thrift-compiler libssl-dev
  zlib1g-dev
)
# Node.js/npm are preinstalled on this machine kind (not Debian's packages, which conflict);
# only fall back to apt when they are absent.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Test-only independent readers (Parquet checks). `npm install`, not `npm ci` (see TOOLCHAIN.md).
if [ "${USAGEDB_SKIP_NPM:-0}" != "1" ] && [ -f tests/js/package.json ]; then
  if [ ! -d tests/js/node_modules ]; then
    echo "setup: npm install in tests/js"
    (cd tests/js && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
