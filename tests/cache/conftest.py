"""Fixtures for the response-cache tests: the pipeline tests' simulator, in-process runtimes
(`make_runtime`) and real worker subprocesses (`rig`), reused as they are."""

from __future__ import annotations

from pipeline.conftest import make_runtime, rig, sim, sim_session  # noqa: F401 - fixtures
