#!/usr/bin/env bash
# Sets everything up and runs the tests. Integration tests start the real Kafka broker and FerretDB themselves
# (`civicbus dev up`: installed once into .civicbus/, left running for the next run; `civicbus dev down` stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
