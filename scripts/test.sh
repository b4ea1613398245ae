#!/usr/bin/env bash
# Sets up, builds (AddressSanitizer + UBSan) and runs the whole default test suite.
# Long soak/fuzz runs are behind the `soak` label: USAGEDB_SOAK=1 scripts/test.sh runs them too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${USAGEDB_TEST_BUILD_DIR:-build-debug}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DUSAGEDB_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS="-O1" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
# The fuzz-corpus, crash and process tests need the release-style CLI binary too; it is part
# of the same build.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
args=(--output-on-failure -j "$(nproc)")
if [ "${USAGEDB_SOAK:-0}" != "1" ]; then
  args+=(-LE soak)
fi
ctest --test-dir "$BUILD_DIR" "${args[@]}"
