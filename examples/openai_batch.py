"""OpenAI's Batch API cookbook flow, unchanged: it runs against api.openai.com or `llmq serve`.

Point it at llmq with the two variables the OpenAI SDK reads anyway:

    export OPENAI_BASE_URL=http://127.0.0.1:8000/v1
    export OPENAI_API_KEY=$(llmq keys create --tenant team-a)
    python examples/openai_batch.py [MODEL]

It writes a small JSONL of chat requests, uploads it, creates a batch, polls it, downloads the
output file and parses every line with the SDK's own `ChatCompletion` type.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from openai import OpenAI
from openai.types.chat import ChatCompletion

MODEL = sys.argv[1] if len(sys.argv) > 1 else "gpt-4o-mini"
TICKETS = [
    "My invoice shows the wrong VAT number.",
    "The app crashes when I upload a photo.",
    "How do I change my delivery address?",
]

client = OpenAI()

# 1. Prepare the batch file: one request per line.
requests = [
    {
        "custom_id": f"ticket-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "Classify the ticket: billing, bug or account."},
                {"role": "user", "content": ticket},
            ],
            "max_tokens": 20,
        },
    }
    for i, ticket in enumerate(TICKETS)
]
path = Path(tempfile.mkdtemp()) / "batch_tasks.jsonl"
path.write_text("".join(json.dumps(r) + "\n" for r in requests))

# 2. Upload it and create the batch.
batch_file = client.files.create(file=open(path, "rb"), purpose="batch")
batch_job = client.batches.create(
    input_file_id=batch_file.id,
    endpoint="/v1/chat/completions",
    completion_window="24h",
)
print("created", batch_job.id, batch_job.status)

# 3. Poll until it is done.
while batch_job.status not in ("completed", "failed", "cancelled", "expired"):
    time.sleep(1)
    batch_job = client.batches.retrieve(batch_job.id)
    print(batch_job.status, batch_job.request_counts)

if batch_job.status != "completed":
    sys.exit(f"batch {batch_job.id} ended {batch_job.status}: {batch_job.errors}")

# 4. Download and parse the results.
result = client.files.content(batch_job.output_file_id).content
for line in result.decode().splitlines():
    item = json.loads(line)
    completion = ChatCompletion.model_validate(item["response"]["body"])
    print(item["custom_id"], "->", completion.choices[0].message.content)
print("usage:", batch_job.usage.total_tokens if batch_job.usage else "n/a", "tokens")
