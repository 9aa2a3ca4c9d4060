"""Celery tasks (thin: decode ids, call the pipeline)."""
