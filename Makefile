# Entry points for a newcomer. Needs Python 3.11+ with pip; everything else installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lock demo dev worker test lint typecheck unit bench bench-improvement fuzz faults clean

# The pinned versions (requirements-dev.lock, hashes checked) first, then the project itself;
# a dependency added to pyproject.toml but not yet locked still installs (make lock pins it).
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools, as locked

UV_COMPILE := $(BIN)/uv pip compile pyproject.toml --python-version 3.11 --universal \
	--generate-hashes --no-header --quiet

lock: $(STAMP) ## re-pin requirements.lock (the worker image) and requirements-dev.lock (make install)
	$(UV_COMPILE) --extra llm -o requirements.lock
	$(UV_COMPILE) --extra dev -o requirements-dev.lock

demo: $(STAMP) ## the support-triage demo on its own private server, worker and database, then stop them
	$(BIN)/python -m examples.run_demo

dev: $(STAMP) ## register the example graphs, keep a dev server (UI :8233) and a worker running until Ctrl-C
	$(BIN)/python -m spark.cli dev

worker: $(STAMP) ## only the worker (TEMPORAL_ADDRESS, SPARK_DATABASE_URL from the environment)
	$(BIN)/spark-worker

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy spark activities workflows worker.py examples bench tests

test: $(STAMP) lint typecheck ## ruff, mypy and the whole pytest suite
	$(BIN)/pytest -q

fuzz: $(STAMP) ## the fuzz suite at length (CI runs it with a bounded example count)
	HYPOTHESIS_PROFILE=bench $(BIN)/pytest -q tests/fuzz

faults: $(STAMP) ## the whole fault matrix with real processes (~30 min; CI runs one trial)
	mkdir -p .spark && rm -f .spark/faults.jsonl
	SPARK_FAULTS_REPORT=$(CURDIR)/.spark/faults.jsonl $(BIN)/pytest -q -m faults_full tests/faults; \
	status=$$?; $(BIN)/python -m tests.faults.report .spark/faults.jsonl; exit $$status

bench: $(STAMP)
	$(BIN)/python -m bench.decisions --json

bench-improvement: $(STAMP) ## both example scenarios end to end on private dev servers (~3 min)
	$(BIN)/python -m bench.improvement --json

clean:
	rm -rf .spark .pytest_cache .mypy_cache .ruff_cache
