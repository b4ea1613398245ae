#!/usr/bin/env bash
# Sets up, builds (release) and runs usagedb on its default data directory ./data.
set -euo pipefail
cd "$(dirname "$0")/.."
USAGEDB_SKIP_NPM=1 bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DUSAGEDB_BUILD_TESTS=OFF >/dev/null
cmake --build build -j "$(nproc)" --target usagedb
exec ./scripts/demo.sh "$@"
