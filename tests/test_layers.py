"""The layers go one way, and a test says so (ARCHITECTURE.md, "Rules the tests enforce").

    llmq/ (CLI, embedded mode)  ->  producer/, workers/, simulator/  ->  core/  ->  schemas/

Read statically from every module's imports (top level and inside functions), so a lazy import
cannot slip past. Each package lists what it may import of the project's own packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OWN = ("schemas", "core", "workers", "producer", "simulator", "llmq", "migrations", "bench")

ALLOWED: dict[str, set[str]] = {
    "schemas": {"schemas"},
    "core": {"schemas", "core", "migrations"},  # core.ledger.migrate runs the migrations
    "producer": {"schemas", "core", "producer"},
    "workers": {"schemas", "core", "workers"},
    # The simulator serves the dialects the provider registry names; it runs no queue code.
    "simulator": {"schemas", "core", "simulator", "workers.providers"},
    "migrations": {"schemas", "core.ledger", "migrations"},
    "llmq": set(OWN) - {"bench"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if "." in node.module:
                found.append((node.lineno, node.module))
            else:  # `from workers import nightly` imports the module workers.nightly
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in OWN]


def _allowed(name: str, allowed: set[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def _violations(package: str) -> list[str]:
    allowed = ALLOWED[package]
    return [
        f"{path.relative_to(REPO)}:{line}: imports {name}"
        for path in sorted((REPO / package).rglob("*.py"))
        for line, name in _imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    ]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_the_layers_below(package: str) -> None:
    assert _violations(package) == []


def test_workers_and_producer_never_import_each_other() -> None:
    """The rule the issue was about, spelled out on its own (both directions)."""
    pairs = [("workers", ("producer", "llmq")), ("producer", ("workers", "llmq", "simulator"))]
    for package, forbidden in pairs:
        for path in sorted((REPO / package).rglob("*.py")):
            for line, name in _imports(path):
                assert name.split(".")[0] not in forbidden, f"{path}:{line}: imports {name}"


def test_the_rule_catches_a_lazy_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from producer.client import Client\n    return Client\n")
    assert _imports(module) == [(2, "producer.client")]


MAX_LINES = 400
SOURCE_PACKAGES = ("schemas", "core", "workers", "producer", "llmq", "simulator", "bench")


def test_no_hand_written_module_is_over_400_lines() -> None:
    long = [
        f"{path.relative_to(REPO)}: {n} lines"
        for package in SOURCE_PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    ]
    assert long == []
