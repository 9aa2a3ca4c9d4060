"""Pure parts of the nightly run: the scheduled date, file naming, the report and its
comparison with the previous night, and the beat entry at the configured UTC time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from celery.beat import BeatLazyFunc
from celery.schedules import crontab

from core.ledger.nightly_figures_repo import InboxEntry, JobCost, RunFigures, UsageFigures
from schemas.config import LLMConfig, NightlySettings
from schemas.job import JobState
from schemas.settings import Settings
from workers.beat import build_schedule
from workers.nightly.inbox import free_path, inbox_files
from workers.nightly.report import RunInfo, build_report, render_markdown
from workers.nightly.run import PHASES, next_phase, scheduled_date

STATES = [s.value for s in JobState]


@pytest.mark.parametrize(
    ("now", "hhmm", "expected"),
    [
        (datetime(2026, 3, 10, 2, 0, tzinfo=UTC), "02:00", date(2026, 3, 10)),
        (datetime(2026, 3, 10, 1, 59, tzinfo=UTC), "02:00", date(2026, 3, 9)),
        (datetime(2026, 3, 11, 0, 5, tzinfo=UTC), "23:30", date(2026, 3, 10)),  # late delivery
        (datetime(2026, 1, 1, 0, 0, tzinfo=UTC), "00:00", date(2026, 1, 1)),
    ],
)
def test_scheduled_date_is_the_latest_firing_at_or_before_now(now, hhmm, expected) -> None:  # type: ignore[no-untyped-def]
    assert scheduled_date(now, hhmm) == expected


def test_phases_run_in_order_and_end_done() -> None:
    assert [next_phase(p) for p in PHASES] == [*PHASES[1:], "done"]


def test_free_path_never_reuses_a_name(tmp_path: Path) -> None:
    assert free_path(tmp_path, "a.jsonl") == tmp_path / "a.jsonl"
    (tmp_path / "a.jsonl").write_text("x")
    (tmp_path / "a.1.jsonl.errors.txt").write_text("x")
    assert free_path(tmp_path, "a.jsonl") == tmp_path / "a.2.jsonl"


def test_inbox_files_folder_or_glob_skip_processed(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.jsonl", "notes.txt", "processed/old.jsonl", "rejected/r.jsonl"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert [p.name for p in inbox_files(str(tmp_path))] == ["a.jsonl", "b.jsonl"]
    assert [p.name for p in inbox_files(str(tmp_path / "**" / "*.jsonl"))] == ["a.jsonl", "b.jsonl"]


def test_beat_schedule_has_the_nightly_entry_at_the_configured_utc_time() -> None:
    config = LLMConfig(nightly=NightlySettings(time="03:17"))
    entry = build_schedule(Settings(), config)["llmq-nightly"]
    assert entry["task"] == "llmq.nightly_run"
    assert isinstance(entry["schedule"], crontab)
    assert entry["schedule"].hour == {3} and entry["schedule"].minute == {17}
    assert entry["options"]["queue"] == "llmq.control"
    lazy = entry["kwargs"]["run_date"]
    assert isinstance(lazy, BeatLazyFunc)  # beat fills in the night's date when it sends
    assert lazy() == scheduled_date(datetime.now(UTC), "03:17").isoformat()
    assert "llmq-sweep" in build_schedule(Settings(), config)


def test_beat_schedule_loads_the_config_when_none_is_given(tmp_path: Path) -> None:
    path = tmp_path / "llm_config.yaml"
    path.write_text("models: []\nnightly:\n  time: '4:05'\n")
    entry = build_schedule(Settings(config_path=str(path)))["llmq-nightly"]
    assert entry["schedule"].hour == {4} and entry["schedule"].minute == {5}


def _figures(cost: str, jobs_ok: int) -> RunFigures:
    usage = [
        UsageFigures("anthropic", "claude", 2, 1, 1, 0, 30, 20, Decimal("0.5"), 0),
        UsageFigures("openai", "gpt", jobs_ok, jobs_ok, 0, 0, 100, 50, Decimal(cost), 1),
    ]
    top = [JobCost("j1", "b1", "c1", "gpt", "openai", "succeeded", 10, 5, Decimal("0.25"))]
    return RunFigures(
        by_state={"succeeded": jobs_ok, "failed": 1},
        by_source={"inbox": jobs_ok, "retry": 1},
        usage=usage,
        failed_jobs_by_reason={"timeout": 1},
        failed_attempts_by_reason={"timeout": 1, "rate_limited": 3},
        costliest=top,
        inbox=[
            InboxEntry("a.jsonl", "ingested", "b1", jobs_ok),
            InboxEntry("bad.jsonl", "rejected", None, 0),
        ],
    )


def _info(day: int, seconds: int) -> RunInfo:
    start = datetime(2026, 3, day, 2, 0, tzinfo=UTC)
    end = start.replace(minute=seconds // 60, second=seconds % 60)
    return RunInfo("nightly", start.date(), "nightly", Decimal("5"), start, end, True)


def test_report_totals_and_comparison_with_the_previous_night() -> None:
    first = build_report(_info(9, 120), _figures("1.25", 4), STATES)
    assert first["previous"] is None and first["delta"] is None
    assert first["usage"]["total_tokens"] == 200 and first["usage"]["cost_usd"] == "1.75000000"
    assert first["usage"]["attempts"] == 6 and first["usage"]["unpriced"] == 1
    assert first["jobs"]["total"] == 5 and first["jobs"]["by_state"]["cancelled"] == 0
    assert first["inbox"]["ingested"] == 1 and first["inbox"]["rejected"] == 1
    assert first["budget_usd"] == "5.00000000" and first["duration_s"] == 120.0

    second = build_report(_info(10, 90), _figures("0.25", 7), STATES, previous=first)
    assert second["previous"]["run_date"] == "2026-03-09"
    assert second["delta"] == {
        "jobs_total": 3,
        "succeeded": 3,
        "failed": 0,
        "total_tokens": 0,
        "cost_usd": "-1.00000000",
        "duration_s": -30.0,
    }
    page = render_markdown(second)
    assert "# Nightly run 2026-03-10" in page
    assert "| openai | gpt | 7 | 7 | 0 | 100 | 50 | 0.25000000 |" in page
    assert "| cost_usd | 1.75000000 | 0.75000000 | -1.00000000 |" in page
    assert "| timeout | 1 | 1 |" in page and "| rate_limited | 0 | 3 |" in page
    assert "bad.jsonl" in page
