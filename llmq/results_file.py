"""The results file of `llmq run` / `llmq results -o`: checked before any call, written safely.

Owns: `check_output` (refuse a results path that is the input file, a directory, or not
writable, before anything is submitted or paid for) and `write_results` (a batch's result
lines through `core.jsonl_write`, so U+0085/U+2028/U+2029 are escaped; a write that still
fails late raises `ResultsNotWritten`, which says how to get the results from the ledger).
Must not: query the ledger itself (the producer `Client` does) or print.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.jsonl_write import write_jsonl

if TYPE_CHECKING:
    import uuid

    from producer.client import Client

Transform = Callable[[dict[str, Any]], Any]


class ResultsNotWritten(OSError):
    """Writing the results file failed after the batch ran; every result is in the ledger."""

    def __init__(self, output: Path, batch_id: uuid.UUID | str, how: str, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(
            f"could not write the results to {output}: {reason}. Nothing is lost: every "
            f"result is in the ledger; write them with: {how} llmq results {batch_id} -o FILE"
        )


def check_output(output: Path, source: Path | None = None) -> None:
    """Raise ValueError (naming `output`) unless results can be written there.

    Refused: the input file itself (by resolved path or same inode), a directory, a folder
    that cannot be created, a file that cannot be opened for writing, and a device that
    refuses a byte (`/dev/full`). A regular file is opened for appending and left as it was
    (removed again if the check created it); nothing else is written.
    """
    where = f"-o {output}"
    if source is not None and _same_file(output, source):
        raise ValueError(f"{where}: that is the input file; choose another results path")
    if output.is_dir():
        raise ValueError(f"{where}: is a directory; give a file path")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        existed = output.exists()
        with open(output, "ab") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                f.write(b"\n")  # a device: only a write shows whether it takes data
                f.flush()
        if not existed:
            output.unlink()
    except OSError as exc:
        raise ValueError(f"{where}: cannot write there ({exc.strerror or exc})") from None


def write_results(
    client: Client,
    batch_id: uuid.UUID | str,
    output: Path,
    transform: Transform | None = None,
    how: str = "",
) -> int:
    """Write the batch's result lines (input order, each through `transform` if given) to
    `output`; returns the lines written.

    Raises:
        ResultsNotWritten: the file system refused (full disk, ...); `how` prefixes the
            suggested `llmq results` command (e.g. the LLMQ_DATABASE_URL to use).
    """
    lines = client.iter_results(batch_id)
    try:
        return write_jsonl(lines if transform is None else map(transform, lines), output)
    except OSError as exc:
        raise ResultsNotWritten(output, batch_id, how or _how(client), exc) from exc


def _how(client: Client) -> str:
    """The LLMQ_DATABASE_URL prefix when the ledger is a SQLite file (embedded runs)."""
    url = client.database_url
    return f"LLMQ_DATABASE_URL={url}" if url.startswith("sqlite") else ""


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
