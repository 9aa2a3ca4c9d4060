"""Chunks (issue 21): one Celery message carries up to 50 job ids, claimed in one statement,
admitted in one transaction, called concurrently on one event loop and finished in one
transaction. See ARCHITECTURE.md, "The hot path"."""
