#!/usr/bin/env bash
# What `scripts/run.sh` runs after building: the HTTP server on ./data (127.0.0.1:8080 by
# default; any `usagedb serve` flag may be passed through, e.g. --listen 0.0.0.0:9000).
# Ctrl-C stops it gracefully (in-flight requests finish, the memtable is flushed).
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./build/usagedb serve --db-root ./data "$@"
