"""Data flows one way: the pure stages import nothing that does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "syncd"

ALLOWED = {
    "model": {"scope_rules"},
    "scope_rules": set(),
    "mirror": {"model"},
    "after": {"model", "changes"},
    "changes": {"model"},
    "evidence": {"model", "scope_rules"},
    "roles": {"model"},
    "plan": {"model", "changes", "roles", "evidence", "plan", "scope_rules", "after"},
    "render": {"model", "changes"},
    "safety": {"model", "changes"},
}


def module_files(module: str) -> list[Path]:
    """The file of a module, or every file of a package."""
    package = PACKAGE / module
    return sorted(package.rglob("*.py")) if package.is_dir() else [PACKAGE / f"{module}.py"]


def imported_modules(path: Path) -> set[str]:
    """The top-level syncd modules ``path`` imports (``plan`` for a module of the plan package)."""
    inside = path.parent != PACKAGE
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and inside:
            names.add(path.parent.name)
        elif isinstance(node, ast.ImportFrom) and node.level == (2 if inside else 1):
            names.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("syncd"):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("syncd."))
    return names


def test_pure_stages_import_only_what_is_below_them():
    for module, allowed in ALLOWED.items():
        for path in module_files(module):
            assert imported_modules(path) <= allowed, path


def test_model_imports_only_the_standard_library():
    tree = ast.parse((PACKAGE / "model.py").read_text())
    third_party = {"sqlalchemy", "msgraph", "click", "kiota_abstractions", "azure"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & third_party
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module.split(".")[0] not in third_party


def absolute_imports(path: Path) -> set[str]:
    """Every ``syncd.x.y`` module ``path`` imports, relative imports resolved."""
    package = ["syncd", *path.relative_to(PACKAGE).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            elif (node.module or "").startswith("syncd"):
                names.add(node.module or "")
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("syncd"))
    return names


def modules_below(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_graph_and_store_never_import_each_other():
    for path in modules_below("graph"):
        assert not any(name.startswith("syncd.store") for name in absolute_imports(path)), path
    for path in modules_below("store"):
        assert not any(name.startswith("syncd.graph") for name in absolute_imports(path)), path


def test_the_planner_and_the_pure_stages_do_no_io():
    io_modules = ("syncd.graph", "syncd.store", "syncd.apply", "syncd.reconcile", "syncd.daemon", "syncd.cli")
    for module in ALLOWED:
        for path in module_files(module):
            imported = absolute_imports(path)
            assert not any(name.startswith(io_modules) for name in imported), path


def test_only_the_demo_imports_the_simulator():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "simulator" or path.name == "demo.py":
            continue
        assert not any(name.startswith("syncd.simulator") for name in absolute_imports(path)), path


def test_the_import_resolver_sees_relative_imports():
    assert "syncd.config" in absolute_imports(PACKAGE / "graph" / "reads.py")
    assert "syncd.graph.client" in absolute_imports(PACKAGE / "graph" / "reads.py")
    assert any(name.startswith("syncd.simulator") for name in absolute_imports(PACKAGE / "demo.py"))


def test_the_import_checker_sees_the_modules_of_the_plan_package():
    assert {"model", "evidence", "roles", "changes", "plan"} <= imported_modules(PACKAGE / "plan" / "desired.py")
    assert "syncd.evidence" in absolute_imports(PACKAGE / "plan" / "users.py")


def third_party_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_all_sql_lives_in_the_store():
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name in ("store", "migrations", "versions"):
            continue
        assert "sqlalchemy" not in third_party_imports(path), path


def test_apply_writes_through_the_store_protocol_only():
    imported = absolute_imports(PACKAGE / "apply.py")
    store_modules = {name for name in imported if name.startswith("syncd.store")}
    assert store_modules == {"syncd.store.protocol"}, store_modules
