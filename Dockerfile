# One image for migrate, worker, beat, flower, metrics and serve (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY schemas schemas
COPY core core
COPY workers workers
COPY producer producer
COPY llmq llmq
COPY simulator simulator
COPY migrations migrations
RUN pip install --no-cache-dir .
RUN mkdir -p /data && chown nobody /data
USER nobody
ENTRYPOINT []
