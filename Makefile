# Set-up and everyday tasks. `make demo` and `make test` install what they need on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .egregora/demo

.PHONY: demo test lint docs bench lock clean screenshots

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)  ## the main job on the sample chat: a database and a site in $(DEMO_DIR)
	$(BIN)/egregora demo $(DEMO_DIR)

test: $(STAMP)  ## the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

docs: $(STAMP)  ## regenerate docs/schema.md from the catalog
	$(BIN)/egregora db schema --format markdown > docs/schema.md

screenshots: $(STAMP)  ## the README's pictures of the demo's site (needs Chromium)
	$(BIN)/python docs/screenshots.py

bench: $(STAMP)  ## every benchmark; installs the bench extra (whatstk, a baseline) first
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python -m benchmarks

lock:  ## re-resolve requirements.lock from pyproject.toml in a scratch venv
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock.new
	rm -rf .lock-venv
	@echo "review requirements.lock.new, keep the header of requirements.lock, then replace it"

clean:
	rm -rf $(VENV) .egregora .pytest_cache .mypy_cache .ruff_cache
