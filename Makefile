# Quick start: `make demo` and `make test` set everything up themselves (virtualenv, packages, PostgreSQL).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= simsa-demo

.PHONY: install demo test test-quick lint pytest clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/simsa demo --workdir $(DEMO_DIR)

# Lint: ruff over the code, tests and benchmarks, then the type checker (mypy) over src/.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# Runs lint, then the whole suite against SQLite and a throwaway PostgreSQL server started here, with the web
# pages driven in Debian's chromium (installed here when missing).
test: lint
	@set -e; \
	chromium=$$(scripts/test-browser ensure | tail -n 1); [ -n "$$chromium" ]; \
	url=$$(scripts/pg-test-server start | tail -n 1); \
	trap 'scripts/pg-test-server stop >/dev/null 2>&1 || true' EXIT; \
	SIMSA_TEST_POSTGRES_URL="$$url" SIMSA_REQUIRE_POSTGRES=1 \
	SIMSA_TEST_CHROMIUM="$$chromium" SIMSA_REQUIRE_BROWSER=1 \
	$(BIN)/python -m pytest -q --durations=25 $(PYTEST_ARGS)

# A quick subset for iterating (SQLite only; the browser tests run when chromium is installed): the web platform,
# accounts, the store, the audit log, the program file and the expert panel.
test-quick: lint
	$(BIN)/python -m pytest -q -x tests/test_web_public.py tests/test_web_admin.py tests/test_web_team.py \
	  tests/test_web_api.py tests/test_web_frame.py tests/test_web_browser.py tests/test_accounts.py \
	  tests/test_evidence_docs.py tests/test_store.py tests/test_audit.py tests/test_program_file.py \
	  tests/test_panel_service.py tests/test_panel_sealing.py tests/test_web_panel_expert.py \
	  tests/test_web_panel_admin.py tests/test_web_panel_api.py tests/test_arena_service.py tests/test_arena_bt.py \
	  tests/test_arena_hygiene.py tests/test_web_arena.py tests/test_web_arena_api.py $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
	scripts/pg-test-server stop >/dev/null 2>&1 || true
	rm -rf .pgtest
