#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs civicbus with its pinned dependencies (idempotent, quick when done).
# Java 17, Maven and Go are needed by the embedded Kafka and FerretDB; `civicbus dev up` says clearly if one lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "error: civicbus needs Python 3.11 (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi

stamp=.venv/.installed
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  echo "$wanted" > "$stamp"
fi
# The sample configuration's learned classifier (not versioned: trained in seconds from the versioned corpus).
if [ ! -f config/sample/models/classifier.joblib ] \
  || [ config/sample/training/work_orders.csv -nt config/sample/models/classifier.joblib ]; then
  .venv/bin/civicbus classifier train config/sample/training/work_orders.csv --text-column 内容 --label-column 类别 \
    --config config/sample --quiet >/dev/null
fi
# The dashboard's front-end dependencies (Apache ECharts, pinned in web/package-lock.json), shipped with the page
# from services/reporting/static/vendor/ (not versioned: copied from node_modules; no CDN at run time).
lock_stamp=web/node_modules/.civicbus-installed
wanted_lock="$(sha256sum web/package-lock.json | cut -d' ' -f1)"
if [ ! -f "$lock_stamp" ] || [ "$(cat "$lock_stamp")" != "$wanted_lock" ]; then
  if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  command -v npm >/dev/null 2>&1 || { echo "error: the dashboard needs Node.js and npm (npm ci in web/)" >&2; exit 1; }
  npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  echo "$wanted_lock" > "$lock_stamp"
fi
mkdir -p services/reporting/static/vendor
cmp -s web/node_modules/echarts/dist/echarts.min.js services/reporting/static/vendor/echarts.min.js \
  || cp web/node_modules/echarts/dist/echarts.min.js services/reporting/static/vendor/echarts.min.js
