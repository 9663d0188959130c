# visio — two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export VISIO_SECRET_KEY_FILE ?= var/secret_key

.PHONY: install run test bench bench-links load fleet lint messages

# uv (from PyPI, into the venv) installs the project: the same requirements as pip's, in
# seconds instead of minutes, which a CI run on a loaded machine feels most.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check 'uv>=0.5'
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	mkdir -p var
	$(BIN)/visio db upgrade
	$(BIN)/visio seed --demo
	@echo "Serving on http://127.0.0.1:8080 — in a browser: http://127.0.0.1:8080/login"
	@echo "Or log in to the API with one of the accounts above:"
	@echo "  curl -s -X POST http://127.0.0.1:8080/api/v1/auth/token -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"email\": \"agent.hondschoote@visio.test\", \"password\": \"visio-demo-2026\"}'"
	$(BIN)/visio serve

# Three pytest-xdist workers on two cores: many tests wait (browsers, calls, processes
# starting), and a third worker fills those waits. Tests sharing a costly fixture stay on
# one worker (xdist_group, set in tests/conftest.py), and the modules holding a slow test
# start first. The Schemathesis module runs apart, in a process of its own beside them:
# collecting it builds its coverage cases (about 50 s of CPU), which every xdist worker
# would otherwise repeat. Its report follows the main one; either failing fails the target.
FUZZ := tests/api/test_fuzz.py
test: install
	@fuzzdir=$$(mktemp -d); \
	$(BIN)/pytest -q -p no:cacheprovider --basetemp=$$fuzzdir/tmp $(FUZZ) \
		> $$fuzzdir/log 2>&1 & fuzz=$$!; \
	$(BIN)/pytest -q --durations=30 -n 3 --dist loadgroup --ignore=$(FUZZ); main=$$?; \
	wait $$fuzz; fuzzed=$$?; \
	echo "== $(FUZZ) (run beside the others)"; cat $$fuzzdir/log; rm -rf $$fuzzdir; \
	test $$main -eq 0 && test $$fuzzed -eq 0

bench: install
	$(BIN)/python bench/run.py $(if $(SCALE),--scale $(SCALE))

# Locust through nginx to two `visio serve` processes on a fresh PostgreSQL database:
# 5 minutes at 10 requests/s unless DURATION (seconds) or RATE (requests/s) say otherwise.
load: install
	$(BIN)/python bench/load.py $(if $(DURATION),--duration $(DURATION)) $(if $(RATE),--rate $(RATE))

# Calls on emulated links (issue 18): root, Chromium, Playwright and coturn; 16 calls of 45 s.
bench-links: install
	$(BIN)/python bench/bench_links.py

# nginx (deploy/nginx/visio.conf) in front of two `visio serve`, a worker, private
# PostgreSQL and Redis, coturn, SMTP and SMS receivers; six faults under load; the table.
fleet: install
	$(BIN)/python -m tests.fleet

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The message catalogue: extract every _() and N_() into the template, then merge it
# into the fr, nl and en catalogues (translate what is new, then `make test`).
LOCALES := visio/locale
messages: install
	$(BIN)/pybabel -q extract -F babel.cfg -k _ -k N_ --no-default-keywords --sort-by-file \
		--add-comments=TRANSLATORS: --project=visio --no-location -o $(LOCALES)/visio.pot visio
	for lang in fr nl en; do \
		$(BIN)/pybabel -q update -D visio -d $(LOCALES) -i $(LOCALES)/visio.pot -l $$lang \
			--no-fuzzy-matching --ignore-obsolete || exit 1; \
	done
