"""The nightly run's ingest phase: the inbox folder's *.jsonl files -> deferred batches.

Owns: finding inbox files, hashing, validating and recording them, and moving them on to
processed/ or rejected/. Must not: write SQL (core/ledger/nightly_repo.py and batch_submit_repo
do), decide the order of the run's phases (workers/nightly/run.py does), or import provider
code.

Each inbox *.jsonl: sha256 seen before -> just move it on (a crash struck between commit and
move); valid -> its batch (deferred, nightly tenant) and its inbox_files row in one
transaction, then moved to processed/; invalid -> recorded, then moved to rejected/ beside
`<name>.errors.txt` naming the bad lines. Files move only after the commit, with os.replace
inside the inbox folder, under a name nothing else uses. Picking is by content hash, so a
crash mid-phase only repeats what is left of it.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from pathlib import Path

from core import cache_key as cache
from core.ledger import batch_submit_repo, nightly_repo
from core.ledger.db import session_scope
from workers.nightly.context import NightlyContext

log = logging.getLogger("workers.nightly")  # the run's log lines stay under one logger

HASH_BLOCK = 1 << 20
PROCESSED, REJECTED = "processed", "rejected"


def free_path(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/<stem>.<n><suffix>` if taken: a move never overwrites."""
    candidate = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 0
    while candidate.exists() or candidate.with_name(candidate.name + ".errors.txt").exists():
        n += 1
        candidate = folder / f"{stem}.{n}{suffix}"
    return candidate


def inbox_files(inbox: str) -> list[Path]:
    """The *.jsonl files waiting in `inbox` (a folder, or a glob pattern), oldest name first.
    Files already under a processed/ or rejected/ folder are never picked up again."""
    root = Path(inbox)
    found = root.glob("*.jsonl") if root.is_dir() else map(Path, glob.glob(inbox, recursive=True))
    return sorted(p for p in found if p.is_file() and p.parent.name not in (PROCESSED, REJECTED))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def ingest_inbox(ctx: NightlyContext, run: nightly_repo.RunRow) -> None:
    """The ingest phase: every file waiting in `nightly.inbox`, one at a time."""
    inbox = ctx.config.nightly.inbox
    if not inbox:
        return
    for path in inbox_files(inbox):
        try:
            outcome = ingest_file(ctx, run, path)
        except OSError as exc:
            # Unreadable, or the move failed after the commit: the file stays where it is and
            # its hash (if recorded) moves it on next time; one file never blocks the night.
            log.error("nightly: inbox file %s left in place: %s", path, exc)
            continue
        ctx.say(f"inbox {path.name}: {outcome}")


def ingest_file(ctx: NightlyContext, run: nightly_repo.RunRow, path: Path) -> str:
    """One inbox file -> 'ingested', 'rejected' or 'already seen'. See the module docstring."""
    from core.jsonl import InputError, parse_file

    sha = sha256_of(path)
    with session_scope(ctx.sessions) as s:
        known = nightly_repo.inbox_state(s, sha)
    if known == "ingested":
        _move(path, path.parent / PROCESSED)
        return "already seen (moved to processed/)"
    try:
        specs = parse_file(path, ctx.config)
    except InputError as exc:
        if known is None:
            with session_scope(ctx.sessions) as s:
                nightly_repo.record_inbox(s, sha, path.name, REJECTED, None, run.id, ctx.clock())
        _move(path, path.parent / REJECTED, errors=exc.render() + "\n")
        return f"rejected ({exc.bad_lines} bad line(s))"
    dest = free_path(path.parent / PROCESSED, path.name)
    batch = batch_submit_repo.NewBatch(
        tenant=ctx.config.nightly.tenant,
        name=f"nightly {run.run_date} {path.name}"[:200],
        nightly=True,  # deferred: the release phase queues them with the rest
        source=str(dest.resolve()),
    )
    now = ctx.clock()
    with session_scope(ctx.sessions) as s:
        keys = cache.keys_for(specs, ctx.config, tenant=batch.tenant)  # repeats hit the cache
        batch_id, _ = batch_submit_repo.insert_batch_with_jobs(s, batch, specs, now, keys)
        if known == REJECTED:  # rejected before, valid now (e.g. a model was added)
            nightly_repo.forget_inbox(s, sha)
        nightly_repo.record_inbox(s, sha, path.name, "ingested", batch_id, run.id, now)
    _move(path, path.parent / PROCESSED, dest=dest)
    return f"ingested {len(specs)} jobs as batch {batch_id}"


def _move(path: Path, folder: Path, *, dest: Path | None = None, errors: str | None = None) -> Path:
    """Move `path` into `folder` (same filesystem: os.replace is atomic), never overwriting;
    with `errors`, write `<name>.errors.txt` beside it first."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = dest or free_path(folder, path.name)
    if errors is not None:
        dest.with_name(dest.name + ".errors.txt").write_text(errors, encoding="utf-8")
    os.replace(path, dest)
    return dest
