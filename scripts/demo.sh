#!/usr/bin/env bash
# Sets everything up and runs the whole system with its demo scenario on the embedded Kafka and FerretDB.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/civicbus demo "$@"
