"""`llmq serve`: OpenAI's Files and Batches API (and a synchronous /v1/chat/completions) over
llmq's queue.

The API is one more producer: it validates input, writes files, batches and jobs to Postgres
through the ledger's repositories, enqueues job ids, and reads results back from the ledger.
It keeps no state of its own (uploads are stored in Postgres too), so replicas scale out behind
any load balancer. Tenant = the caller's API key (`llmq keys create --tenant T`).

Modules: `settings` (environment), `errors` (OpenAI error bodies), `state` (what a request
needs, and the key check), `upload` (streaming multipart into the ledger), `objects` (File and
Batch objects as OpenAI spells them), `batches` and `chat` (the work), `routes` (HTTP), `app`.
"""
