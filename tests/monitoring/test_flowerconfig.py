"""workers/flowerconfig.py `format_task`: what Flower's UI shows for a task is ids only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workers.flowerconfig import format_task

JOB = "3f1c2a9e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (JOB, f"('{JOB}',)"),  # argsrepr = the id, as llmq publishes it
        (f"['{JOB}']", f"('{JOB}',)"),
        (f"('{JOB}', 'Tell me a secret story')", f"('{JOB}',)"),  # a payload is dropped
        ("('just a prompt',)", "()"),
        (None, None),
    ],
)
def test_args_keep_ids_only(args: str | None, shown: str | None) -> None:
    task = SimpleNamespace(args=args, kwargs="{}", result="'succeeded'", exception=None)
    assert format_task(task).args == shown


def test_kwargs_long_results_and_errors_are_trimmed() -> None:
    task = SimpleNamespace(
        args=JOB,
        kwargs="{'prompt': 'hello'}",
        result="x" * 500,
        exception="AuthFailed('Incorrect API key provided: sk-test-SECRET-123')",
        traceback="Traceback ... Authorization: Bearer sk-test-SECRET-123",
    )
    out = format_task(task)
    assert out.kwargs == "{...}"
    assert len(out.result) < 100
    assert "SECRET" not in out.exception and "SECRET" not in out.traceback
