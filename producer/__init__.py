"""What a user calls: the `llmq` CLI and the Python client. Never imports provider code."""
