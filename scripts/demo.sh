#!/usr/bin/env bash
# What `scripts/run.sh` runs after building (until the HTTP server lands): loads the example
# events into ./data and prints the per-account usage summary. Loading twice is safe: every
# event is then a duplicate.
set -euo pipefail
cd "$(dirname "$0")/.."
./build/usagedb --db-root ./data ingest examples/events.jsonl
./build/usagedb --db-root ./data usage
