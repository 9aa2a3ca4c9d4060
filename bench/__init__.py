"""llmq's benchmark (`make bench`, `python -m bench.run`): figures measured against their goals.

Owns: starting a production-shaped stack (throwaway Postgres database, a private Redis db, the
simulator and `llmq worker`/`llmq beat` processes), the scenarios, and the report
(bench/results/latest.json). Must not: touch test or user data (its own database and Redis db
only), or change any llmq code or setting: it measures what ships.
"""
