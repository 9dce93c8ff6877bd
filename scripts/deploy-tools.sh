#!/usr/bin/env bash
# The tools that validate deploy/ (tests/unit/test_deploy.py), installed once and reused (idempotent, quick when
# done), each from a registry this project's machines reach:
#   promtool      Debian's `prometheus` package (apt-get, as root)
#   kubeconform   built from the Go module proxy into .civicbus/bin
#   composecheck  deploy/tools/composecheck (compose-go, Docker Compose's own loader), built into .civicbus/bin
#   schemas       the Kubernetes JSON schemas shipped by the `kubernetes-validate` wheel on PyPI, extracted into
#                 .civicbus/k8s-schemas (kubeconform would download them from a Git host at run time)
#   kustomize     `kubectl kustomize` where kubectl is installed, else kustomize built from the Go module proxy
# A step that cannot run says so and the run goes on; the tests then skip, naming the tool (under CI they fail).
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECONFORM_VERSION=v0.7.0
KUSTOMIZE_VERSION=v5.7.1
KUBERNETES_VALIDATE_VERSION=1.37.0
# The Kubernetes versions the manifests are validated against: an old one still in support and the newest.
KUBERNETES_VERSIONS="1.29.0 1.37.0"

home="${CIVICBUS_HOME:-.civicbus}"
bin="$home/bin"
mkdir -p "$bin" "$home/cache" "$home/logs"

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "note: apt-get install prometheus as root (promtool); without it the rule tests skip" >&2
  fi
fi

# go install / go build into .civicbus/bin, once per version (a marker file holds what was built).
go_tool() {  # name version command...
  local name=$1 version=$2; shift 2
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/$name.installed" 2>/dev/null)" = "$version" ]; then
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "note: Go is needed to build $name; without it its tests skip" >&2
    return 0
  fi
  if "$@" >"$home/logs/$name-install.log" 2>&1; then
    echo "$version" > "$bin/$name.installed"
  else
    echo "warning: building $name failed, see $home/logs/$name-install.log" >&2
  fi
}
export CGO_ENABLED=0
abs_bin="$(cd "$bin" && pwd)"
go_tool kubeconform "$KUBECONFORM_VERSION" \
  env GOBIN="$abs_bin" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
go_tool composecheck "$(cat deploy/tools/composecheck/go.sum deploy/tools/composecheck/main.go | sha256sum | cut -d' ' -f1)" \
  env GOFLAGS=-mod=mod go -C deploy/tools/composecheck build -trimpath -o "$abs_bin/composecheck" .
if ! command -v kubectl >/dev/null 2>&1; then
  go_tool kustomize "$KUSTOMIZE_VERSION" \
    env GOBIN="$abs_bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

schemas="$home/k8s-schemas"
wheel="$home/cache/kubernetes_validate-$KUBERNETES_VALIDATE_VERSION-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
  .venv/bin/python -m pip download --quiet --no-deps --dest "$home/cache" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    || echo "warning: could not download kubernetes-validate from PyPI; kubeconform tests skip" >&2
fi
if [ -f "$wheel" ]; then
  # shellcheck disable=SC2086
  .venv/bin/python deploy/tools/k8s_schemas.py "$wheel" "$schemas" $KUBERNETES_VERSIONS >/dev/null
fi
