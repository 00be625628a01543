# Tarif: `make run` serves the demo, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# pytest-xdist processes for `make test` (one per core by default; TEST_WORKERS=0 runs in one process).
TEST_WORKERS ?= auto

.PHONY: install run test lint worker bench messages clean failover-drill console-screenshots test-deploy

$(STAMP): pyproject.toml requirements.lock scripts/ensure-system-packages
	scripts/ensure-system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements.lock -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# On PostgreSQL the tables' owner migrates (DATABASE_MIGRATE_URL, else DATABASE_URL) and the
# server runs as an application role that owns nothing (`db_roles`; a no-op on SQLite).
# scripts/run-demo prints the demo logins in one block once the server answers.
run: install
	scripts/run-demo $(BIN)/python $(HOST) $(PORT)

# axe-core (npm registry, pinned by tests/browser/axe/package-lock.json) for the browser tests
# accessibility checks (tests/browser/axe.py); without npm those checks skip and say so.
AXE := tests/browser/axe/node_modules/axe-core/axe.min.js
$(AXE): tests/browser/axe/package.json tests/browser/axe/package-lock.json
	npm ci --prefix tests/browser/axe --no-audit --no-fund --loglevel=error
	touch $(AXE)

test: install
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(AXE); \
	else echo "npm not found: the accessibility checks will skip (apt-get install npm)"; fi
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# Import architecture (docs/architecture.md): the import-linter contracts of pyproject.toml, then
# the checks they cannot express (no import cycle, deferred imports commented, one collection entry).
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/import_cycles.py

# docs/console.md's pictures: the finance walk in Chromium, one picture per step into docs/console/.
console-screenshots: install
	TARIF_DOCS_SCREENSHOTS=1 $(BIN)/python -m pytest -p no:randomly -q tests/browser/test_console_walk.py

worker: install
	@test -n "$$CELERY_BROKER_URL" || (echo "Set CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0) to run a worker"; exit 2)
	$(BIN)/celery -A config worker --beat --loglevel=INFO --concurrency=2 -Q celery,payments,documents

bench: install
	$(BIN)/python bench/run_all.py

failover-drill: install
	scripts/failover-drill

# Issue 20 (docs/scaling.md): the read-replica and PgBouncer tests against a private primary,
# its streaming replica and PgBouncer in transaction mode on loopback, stopped afterwards.
test-deploy: install
	scripts/test-deploy $(BIN)/python

messages: install
	$(BIN)/python manage.py makemessages -l fr -l en --ignore=.venv --ignore=tests --ignore=bench
	$(BIN)/python manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) staticfiles
