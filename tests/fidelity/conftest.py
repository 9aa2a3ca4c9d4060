"""Fixtures for the fidelity tests (issue 15): the simulator and real worker processes, as in
tests/pipeline (the same fixtures, imported so pytest registers them here too)."""

from tests.pipeline.conftest import rig, sim, sim_session

__all__ = ["rig", "sim", "sim_session"]
