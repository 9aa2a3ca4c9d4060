"""The ledger: Postgres (or SQLite, embedded) tables and the only code that writes them."""
