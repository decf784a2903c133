# xiuhua: the two commands a newcomer needs are `make demo` and `make test`.
# Both create (or reuse) .venv, install the project with its extras, and install
# missing system packages with apt-get (see scripts/system-deps.sh).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= edge,hub,ocr,train,dev,audio
STAMP := $(VENV)/.xiuhua-installed
PYTEST_ARGS ?=

.PHONY: demo test check lint format typecheck schemas system-deps venv bench model eval-model clean

demo: venv
	$(BIN)/xiuhua demo $(DEMO_ARGS)

test: venv check
	$(BIN)/pytest $(PYTEST_ARGS)

check: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

system-deps:
	bash scripts/system-deps.sh

venv: system-deps $(STAMP)

# torch==2.13.0 (the `train` extra) is pinned: on the project's machines pip takes
# a local CPU wheel for it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

schemas: venv
	$(BIN)/python -m edge_agent.protocol docs/protocol

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
