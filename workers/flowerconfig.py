"""Flower settings for llmq (`llmq flower` passes `--conf` pointing here).

Owns: `format_task`, which trims what Flower's UI shows for a task to ids and scrubs key-shaped
text from errors. Must not: import the app or touch the broker (Flower execs this file itself).

Why, when messages already carry only the job id (argsrepr): this is the second line of defence
for any task someone adds later with a payload. Flower's JSON API (/api/tasks) does not call
format_task, so the first line (ids-only messages) is the one that must hold.
"""

from __future__ import annotations

import re
from typing import Any

_ID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|\b\d{1,19}\b")
_MAX_RESULT = 64  # process_job returns a short outcome word; anything longer is cut


def _ids_only(text: str | None) -> str | None:
    if text is None:
        return None
    ids = _ID.findall(str(text))
    return "(" + ", ".join(repr(i) for i in ids) + ("," if len(ids) == 1 else "") + ")"


def format_task(task: Any) -> Any:
    """Called by Flower's UI with a copy of each task before it is shown."""
    from workers.observability.redaction import RedactionFilter

    scrub = RedactionFilter().scrub
    task.args = _ids_only(getattr(task, "args", None))
    if getattr(task, "kwargs", None) not in (None, "{}"):
        task.kwargs = "{...}"
    result = getattr(task, "result", None)
    if isinstance(result, str) and len(result) > _MAX_RESULT:
        task.result = result[:_MAX_RESULT] + "..."
    for name in ("exception", "traceback"):
        value = getattr(task, name, None)
        if isinstance(value, str):
            setattr(task, name, scrub(value))
    return task
