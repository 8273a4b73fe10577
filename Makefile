# Everything a newcomer needs: `make demo` runs the system, `make test` runs the tests.
# Both set up a virtual environment from pyproject.toml first; nothing else to install.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test browser lint fmt clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# `make demo PORT=8100` for another port; `make demo SIMULATE=50` adds simulated viewers
# (to the demo already running on that port, if there is one).
PORT     ?= 8000
SIMULATE ?= 0

demo: install
	$(BIN)/panen demo --port $(PORT) --simulate $(SIMULATE)

test: install browser
	$(BIN)/pytest

# The page tests drive Debian's chromium; install it where we can (root with apt-get).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "chromium is not installed: the page tests will be skipped"; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .panen .pytest_cache .mypy_cache .ruff_cache
