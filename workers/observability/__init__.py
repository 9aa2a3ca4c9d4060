"""Observability: structured, redacted logs; Prometheus metrics computed from the ledger and the
health store at scrape time; pure alert thresholds.

Owns: how llmq reports itself. Must not: write the ledger, change routing state, or see prompt
text or keys (logs are scrubbed; metrics carry only names, counts, tokens and money).
Submodules are imported on use (`workers.observability.logs`, `.redaction`, `.worker_signals`,
`.metrics`, `.alerts`), so importing this package stays cheap for the CLI.
"""
