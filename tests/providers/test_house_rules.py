"""House rule 1 (the litellm failure): no provider name in an `if`/`elif`/`match` outside
workers/providers/. Provider differences live in the provider modules, or in data tables."""

from __future__ import annotations

import ast
from pathlib import Path

from schemas import LLMProvider
from workers.providers import REGISTRY

REPO = Path(__file__).resolve().parents[2]
NAMES = {p.value for p in LLMProvider}


def _branch_tests(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.If | ast.IfExp | ast.While):
            yield node.lineno, node.test
        elif isinstance(node, ast.Match):
            for case in node.cases:
                yield node.lineno, case.pattern


def _names_in(expr: ast.AST):
    for sub in ast.walk(expr):
        if isinstance(sub, ast.Constant) and sub.value in NAMES:
            yield sub.value
        if isinstance(sub, ast.Attribute) and getattr(sub.value, "id", None) == "LLMProvider":
            yield sub.attr


def test_no_provider_branches_outside_providers():
    offences = []
    for root in ("workers", "producer", "schemas"):
        for path in sorted((REPO / root).rglob("*.py")):
            if path.is_relative_to(REPO / "workers" / "providers"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for line, test in _branch_tests(tree):
                offences += [f"{path.relative_to(REPO)}:{line}: {n}" for n in _names_in(test)]
    assert offences == []


# House rule 2: a provider lives in one place. Its name is written only in its adapter module,
# the registry, the simulator's dialects and the `LLMProvider` enum; everything else reads
# REGISTRY (or takes the name from the config).
SCANNED = ("core", "llmq", "producer", "schemas", "simulator", "workers")
ALLOWED_FILES = {
    REPO / "workers" / "providers" / "__init__.py",
    REPO / "producer" / "openai_format.py",  # names the OpenAI Batch *format*, not a provider
    *(
        path
        for path in (REPO / "workers" / "providers").glob("*.py")
        if path.stem in {cls.__module__.rsplit(".", 1)[-1] for cls in REGISTRY.values()}
    ),
}
ALLOWED_DIRS = (REPO / "simulator" / "providers",)


def _provider_names() -> set[str]:
    from simulator.providers import endpoints

    return {str(p) for p in REGISTRY} | set(endpoints()) | NAMES


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _enum_body(tree: ast.AST) -> set[int]:
    """Nodes inside `class LLMProvider` (the seed API's enum may spell the six names)."""
    return {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "LLMProvider"
        for sub in ast.walk(node)
    }


def _named_providers(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every provider name written as a string or an enum member, outside
    docstrings and the `LLMProvider` enum itself."""
    skip = _docstrings(tree) | _enum_body(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Constant) and node.value in names:
            found.append((node.lineno, repr(node.value)))
        elif (
            isinstance(node, ast.Attribute)
            and getattr(node.value, "id", None) == "LLMProvider"
            and node.attr in LLMProvider.__members__
        ):
            found.append((node.lineno, f"LLMProvider.{node.attr}"))
    return found


def test_no_provider_names_outside_adapters_registry_and_simulator_dialects():
    names = _provider_names()
    offences = []
    for root in SCANNED:
        for path in sorted((REPO / root).rglob("*.py")):
            if path in ALLOWED_FILES or any(path.is_relative_to(d) for d in ALLOWED_DIRS):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            offences += [
                f"{path.relative_to(REPO)}:{line}: {name}"
                for line, name in _named_providers(tree, names)
            ]
    assert offences == []


def test_the_static_check_sees_names_but_not_docstrings_or_the_enum():
    tree = ast.parse(
        '"""openai"""\nclass LLMProvider:\n    OPENAI = "openai"\n'
        'x = {"anthropic": 1}\ny = LLMProvider.LOCAL\nz = ("ollama",)\n'
    )
    found = sorted(_named_providers(tree, _provider_names()))
    assert found == [(4, "'anthropic'"), (5, "LLMProvider.LOCAL"), (6, "'ollama'")]
