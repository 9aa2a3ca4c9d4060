"""Reusable test helpers: real Celery worker subprocesses, llm_config files for the simulator,
and seeding jobs straight into the ledger (test data only)."""
