"""The layers point one way: ops → services → civicbus (the kernel). The kernel imports no service and no ops; a
service imports no other service and no ops. Read from the source, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


def offending(package: str, forbidden: callable) -> list[str]:
    return [f"{path.relative_to(ROOT)} imports {module}"
            for path in sorted((ROOT / package).rglob("*.py"))
            for module in sorted(imported_modules(path)) if forbidden(path, module)]


def test_the_kernel_imports_no_service_and_no_ops() -> None:
    assert offending("civicbus", lambda _, module: module.split(".")[0] in ("services", "ops", "tests")) == []


def test_a_service_imports_no_other_service_and_no_ops() -> None:
    def forbidden(path: Path, module: str) -> bool:
        own = path.relative_to(ROOT / "services").parts[0]
        parts = module.split(".")
        return parts[0] in ("ops", "tests") or (parts[0] == "services" and len(parts) > 1 and parts[1] != own)

    assert offending("services", forbidden) == []


def test_the_checker_sees_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from services.triage.decide import TriageEngine\n", encoding="utf-8")
    assert "services.triage.decide" in imported_modules(module)
