#!/usr/bin/env bash
# What `scripts/run.sh` runs after building: not yet a server (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "usagedb: the CLI is not built yet in this revision" >&2
exit 1
