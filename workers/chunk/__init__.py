"""Chunks (issue 21): one Celery message carries up to 48 job ids, run in waves: each wave
takes call slots, is claimed in one statement, admitted in one transaction, called
concurrently on the process's event loop and finished in one transaction per group of answers.
See ARCHITECTURE.md, "The hot path"."""
