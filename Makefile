# Common tasks. `make help` lists them.
PY ?= .venv/bin/python
VENV ?= .venv

.PHONY: help install serve test lint format typecheck train evaluate compare bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: ## create .venv and install the project with its dev tools
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[dev]"

serve: ## run the API on 127.0.0.1:8000 with the shipped model
	$(VENV)/bin/triage serve

test: ## run the test suite (the README's test command)
	$(PY) -m pytest

lint: ## ruff lint and format check, mypy on app/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app

format: ## apply ruff's formatting
	$(VENV)/bin/ruff format .

train: ## render the corpus and train a new version into model/ (through the gate)
	$(VENV)/bin/triage corpus build
	$(VENV)/bin/triage train

evaluate: ## evaluate the current model on the test inboxes; writes reports/metrics.json
	$(VENV)/bin/triage evaluate

compare: ## compare model alternatives in grouped cross-validation; writes reports/model_selection.json
	$(VENV)/bin/triage compare

bench: ## run the benchmark scripts (service, batch, Dask, the retraining curve)
	$(PY) scripts/bench_api.py
	$(PY) scripts/bench_batch.py
	$(PY) scripts/bench_dask.py
	$(PY) scripts/bench_adaptation.py
