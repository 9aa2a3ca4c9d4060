"""Fixtures for the embedding tests (issue 17): the pipeline tests' simulator, in-process
runtimes and real worker subprocesses, reused as they are."""

from __future__ import annotations

from pipeline.conftest import make_runtime, rig, sim, sim_session  # noqa: F401 - fixtures
