# The two README commands: `make run` (install, then the daemon on feeds.yaml with the
# database in storage/) and `make test` (install with the test extra, lint, type-check, test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
# Two stamps: the daemon needs only the runtime dependencies; the tests need everything.
RUN_STAMP := $(VENV)/.installed-run-$(SUM)
TEST_STAMP := $(VENV)/.installed-test-$(SUM)
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: install install-test run test lint bench bench-peers clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e .
	rm -f $(VENV)/.installed-run-*
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test,bench]'
	rm -f $(VENV)/.installed-*
	touch $(TEST_STAMP) $(RUN_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

run: install
	$(BIN)/monitor --config feeds.yaml --db storage/monitor.db run

lint: install-test
	$(BIN)/ruff check monitor tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# The desk's browser tests drive Debian's chromium (never a downloaded one); as
# root it is installed here, otherwise those tests are skipped with the reason.
chromium:
	@if [ "$$(id -u)" = 0 ] && [ ! -x /usr/bin/chromium ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
		|| echo "chromium not installed: the browser tests will be skipped"; fi

test: lint chromium
	$(BIN)/pytest -n 2 -q

# The poll benchmark's native peer is Debian's newsboat (never a downloaded build):
# installed here through apt-get (as root, or with sudo when it asks for no password);
# where it cannot be, the benchmark skips its rows and says why.
bench-peers:
	@if command -v newsboat >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends newsboat) \
		|| echo "newsboat not installed: the benchmark skips its rows"; \
	elif sudo -n true 2>/dev/null; then \
		(sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends newsboat) \
		|| echo "newsboat not installed: the benchmark skips its rows"; \
	else echo "newsboat not installed (needs root or sudo): the benchmark skips its rows"; fi

bench: install-test bench-peers
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
