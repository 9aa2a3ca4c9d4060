"""celery beat's schedule: what runs periodically, and how often.

Owns: `build_schedule(settings, config)`, the entries beat runs, and `LlmqScheduler`, the
scheduler class celeryconfig names as `beat_scheduler` (so both `llmq beat` and
`celery -A workers beat` use it), which builds those entries when beat starts. Must not: do
I/O at import (the config is read only by a starting scheduler, for `nightly.time`) or run any
task itself; the tasks live in workers/sweeper.py and workers/nightly/task.py.

Entries run on the workers, from the control queue (celeryconfig `task_routes`), so a long
job backlog never delays them. Each sweep message expires after a few intervals: with no worker
up, beat's ticks do not pile up into a burst of sweeps when one starts.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from celery.beat import PersistentScheduler

from core.names import (
    CONTROL_QUEUE,
    FLUSH_BATCHES_TASK,
    NIGHTLY_RUN_TASK,
    POLL_BATCHES_TASK,
    SWEEP_TASK,
)
from schemas.settings import Settings, load_settings

if TYPE_CHECKING:
    from schemas.config import LLMConfig

log = logging.getLogger(__name__)

SWEEP_ENTRY = "llmq-sweep"
NIGHTLY_ENTRY = "llmq-nightly"
FLUSH_ENTRY = "llmq-flush-batches"
POLL_ENTRY = "llmq-poll-batches"


def sweep_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """The sweeper, every `settings.sweep_interval_s` seconds."""
    interval = settings.sweep_interval_s
    return {
        SWEEP_ENTRY: {
            "task": SWEEP_TASK,
            "schedule": interval,
            "options": {"expires": max(3 * interval, 5.0)},
        }
    }


def nightly_run_date(hhmm: str) -> str:
    """The date (ISO) of the nightly run beat is sending now: evaluated by beat at send time
    (BeatLazyFunc), so a message delivered after midnight still names its own night."""
    from datetime import UTC, datetime

    from workers.nightly.run import scheduled_date

    return scheduled_date(datetime.now(UTC), hhmm).isoformat()


def _load(settings: Settings) -> LLMConfig | None:
    """The config beat's entries are built from; None (defaults) when it does not load."""
    try:
        from workers.providers.config import load_config

        return load_config(settings.config_path)
    except Exception as exc:  # noqa: BLE001 - beat must start; the worker reports the config
        log.warning("beat schedule from defaults: config: %s", exc)
        return None


def _nightly_time(settings: Settings, config: LLMConfig | None) -> str:
    """`nightly.time` (UTC, HH:MM) from the config (the default when it did not load)."""
    if config is None:
        from schemas.config import NightlySettings

        return NightlySettings().time
    return config.nightly.time


def nightly_entries(settings: Settings, config: LLMConfig | None) -> dict[str, dict[str, Any]]:
    """The nightly run (workers/nightly/) on a UTC crontab at `nightly.time`, on the control
    queue. Exactly once per night is the ledger's job (a unique row per date), not beat's."""
    from celery.beat import BeatLazyFunc
    from celery.schedules import crontab

    hhmm = _nightly_time(settings, config)
    hour, minute = (int(x) for x in hhmm.split(":"))
    return {
        NIGHTLY_ENTRY: {
            "task": NIGHTLY_RUN_TASK,
            "schedule": crontab(minute=minute, hour=hour),
            "kwargs": {"run_date": BeatLazyFunc(nightly_run_date, hhmm)},
            "options": {"queue": CONTROL_QUEUE},
        }
    }


def lane_entries(config: LLMConfig | None) -> dict[str, dict[str, Any]]:
    """Provider batch lanes (issue 18): the flusher every few seconds (it sends a deployment's
    items once the oldest waited `flush_after_s`) and the poller every `poll_s`."""
    from schemas.config import BatchLaneSettings

    cfg = config.batch_lane if config is not None else BatchLaneSettings()
    if not cfg.enabled:
        return {}
    flush_every = min(max(cfg.flush_after_s / 4, 1.0), 10.0)
    return {
        FLUSH_ENTRY: {
            "task": FLUSH_BATCHES_TASK,
            "schedule": flush_every,
            "options": {"queue": CONTROL_QUEUE, "expires": max(3 * flush_every, 5.0)},
        },
        POLL_ENTRY: {
            "task": POLL_BATCHES_TASK,
            "schedule": cfg.poll_s,
            "options": {"queue": CONTROL_QUEUE, "expires": max(3 * cfg.poll_s, 5.0)},
        },
    }


def build_schedule(settings: Settings, config: LLMConfig | None = None) -> dict[str, Any]:
    """The whole `beat_schedule`: the sweeper, the nightly run and the batch lanes."""
    config = config if config is not None else _load(settings)
    return {
        **sweep_entries(settings),
        **nightly_entries(settings, config),
        **lane_entries(config),
    }


class LlmqScheduler(PersistentScheduler):
    """celery's PersistentScheduler (last-run times in the `--schedule` file) whose entries are
    built as beat starts: `build_schedule` from the environment's settings and the config's
    `nightly.time`, read then and not when celeryconfig is imported. Entries already in
    `beat_schedule` (none by default) are kept and win on a name clash.

    `setup_schedule` runs once per started beat; celery's `lazy` instances (the start banner)
    never call it, so they read nothing.
    """

    def setup_schedule(self) -> None:
        entries = build_schedule(load_settings(os.environ))
        self.app.conf.beat_schedule = {**entries, **(self.app.conf.beat_schedule or {})}
        log.info("beat schedule: %s", describe(self.app.conf.beat_schedule))
        super().setup_schedule()


def describe(schedule: dict[str, Any]) -> str:
    """One line naming each entry, its task and when it runs (for beat's start-up log)."""
    return "; ".join(f"{name} ({e['task']}) {_when(e['schedule'])}" for name, e in schedule.items())


def _when(schedule: Any) -> str:
    return f"every {schedule} s" if isinstance(schedule, int | float) else str(schedule)
