"""Data flows one way: the pure stages import nothing that does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "syncd"

ALLOWED = {
    "model": set(),
    "changes": set(),
    "roles": {"model"},
    "plan": {"model", "changes", "roles"},
    "render": {"model", "changes"},
    "safety": {"model", "changes"},
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("syncd"):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("syncd."))
    return names


def test_pure_stages_import_only_what_is_below_them():
    for module, allowed in ALLOWED.items():
        assert imported_modules(PACKAGE / f"{module}.py") <= allowed, module


def test_model_imports_only_the_standard_library():
    tree = ast.parse((PACKAGE / "model.py").read_text())
    third_party = {"sqlalchemy", "msgraph", "click", "kiota_abstractions", "azure"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & third_party
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module.split(".")[0] not in third_party
