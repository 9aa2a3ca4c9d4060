# Two commands for a fresh machine: `make demo` (no servers, no keys) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench venv dev clean

$(BIN)/llmq:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e .

$(VENV)/.dev: $(BIN)/llmq pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/llmq
dev: $(VENV)/.dev

demo: $(BIN)/llmq  ## run a real batch on embedded defaults: SQLite, in-process broker, simulator
	env -u LLMQ_DATABASE_URL -u LLMQ_BROKER_URL $(BIN)/llmq demo

test: $(VENV)/.dev  ## install dev extras and test tools, find or start Postgres and Redis, run the whole suite
	bash scripts/tools.sh
	bash scripts/services.sh
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n $${LLMQ_TEST_WORKERS:-4}

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.dev  ## performance figures against their goals (see README)
	$(BIN)/pip install -q -e '.[bench]'
	bash scripts/services.sh
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .llmq .pytest_cache
