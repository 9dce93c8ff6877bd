"""Kubernetes JSON schemas for kubeconform, offline: taken from the ``kubernetes-validate`` wheel on PyPI.

kubeconform downloads its schemas at run time from a Git host this project's machines cannot reach. The PyPI
package ``kubernetes-validate`` ships the same schemas, generated from each Kubernetes release's OpenAPI document,
one folder per minor version (``v1.32.0-local-strict/deployment-apps-v1.json`` …, strict: unknown fields are
errors). Its schemas refer to one shared ``/api/_definitions.json`` by an absolute ``$id`` on kubernetes.io; this
script extracts the folders asked for and makes those references relative to the folder, so kubeconform resolves
them from files:

    python deploy/tools/k8s_schemas.py WHEEL DEST 1.32.0 [1.37.0 …]
    kubeconform -strict -kubernetes-version 1.32.0 \
        -schema-location 'DEST/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json'

Run by scripts/test.sh; idempotent (a folder already extracted is kept).
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

PREFIX = "kubernetes_validate/kubernetes-json-schema/"
SHARED = "/api/_definitions.json#"


def _relative(node: Any) -> Any:
    if isinstance(node, dict):
        node = {key: _relative(value) for key, value in node.items() if key not in ("$id", "id") or
                not isinstance(value, str)}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(SHARED):
            node["$ref"] = "_definitions.json#" + ref[len(SHARED):]
        return node
    if isinstance(node, list):
        return [_relative(item) for item in node]
    return node


def extract(wheel: Path, dest: Path, version: str) -> Path:
    folder = dest / f"v{version}-local-strict"
    done = folder / ".complete"
    if done.is_file():
        return folder
    prefix = f"{PREFIX}v{version}-local-strict/"
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith(prefix) and name.endswith(".json"):
                schema = _relative(json.loads(archive.read(name)))
                (folder / name[len(prefix):]).write_text(json.dumps(schema), encoding="utf-8")
                count += 1
    if not count:
        raise SystemExit(f"error: {wheel.name} has no schemas of Kubernetes {version}")
    done.write_text(f"{count}\n")
    return folder


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    wheel, dest = Path(argv[0]), Path(argv[1])
    for version in argv[2:]:
        print(extract(wheel, dest, version))


if __name__ == "__main__":
    main(sys.argv[1:])
