"""House rule 1 (the litellm failure): no provider name in an `if`/`elif`/`match` outside
workers/providers/. Provider differences live in the provider modules, or in data tables."""

from __future__ import annotations

import ast
from pathlib import Path

from schemas import LLMProvider

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
