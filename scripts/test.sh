#!/usr/bin/env bash
# Sets everything up and runs the tests. Integration tests start the real Kafka broker and FerretDB themselves
# (`civicbus dev up`: installed once into .civicbus/, left running for the next run; `civicbus dev down` stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Chromium and a Chinese font for the dashboard's browser test (Playwright drives the Debian package; it never
# downloads a browser; without a CJK font the page's screenshot shows boxes).
if [ ! -x /usr/bin/chromium ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
  else
    echo "note: apt-get install chromium fonts-wqy-microhei as root; without /usr/bin/chromium the dashboard" \
      "browser test skips" >&2
  fi
fi
# promtool, kubeconform, the Kubernetes schemas and the compose checker for the deployment tests.
scripts/deploy-tools.sh
exec .venv/bin/python -m pytest "$@"
