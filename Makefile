# visio — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export VISIO_SECRET_KEY_FILE ?= var/secret_key

.PHONY: install run test bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	mkdir -p var
	$(BIN)/visio db upgrade
	$(BIN)/visio seed --demo
	@echo "Serving on http://127.0.0.1:8080 — log in with one of the accounts above:"
	@echo "  curl -s -X POST http://127.0.0.1:8080/api/v1/auth/token -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"email\": \"agent.hondschoote@visio.test\", \"password\": \"visio-demo-2026\"}'"
	$(BIN)/visio serve

test: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/run.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
