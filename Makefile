# Two commands: `make demo` (set up, build the demo zoo, run the main job on the
# embedded default) and `make test` (set up, run the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
# --no-cache-dir: no second copy of every wheel under ~/.cache (torch alone is ~200 MB);
# the install needs ~2 GB free, and CI machines can be short of disk.
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check --no-cache-dir

.PHONY: demo test lint typecheck proto bench clean help

help:
	@echo "make demo       set up .venv, build the demo model zoo, run 'testbed up'"
	@echo "make test       set up .venv with the dev extras, lint, type-check, run the whole suite"
	@echo "make lint       ruff check + format check"
	@echo "make typecheck  mypy on testbed/ and the node packages"
	@echo "make proto      regenerate testbed/rpc from proto/"
	@echo "make bench      run the benchmarks (prints ours vs the bare reference)"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "error: Python 3.11 or newer is needed (found $$($(PYTHON) --version))" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run: pyproject.toml | $(PY)
	$(PIP) -e '.[cpu,train]'
	@touch $@

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PIP) -e '.[dev]'
	@touch $@ $(VENV)/.run

demo: $(VENV)/.run
	$(BIN)/testbed zoo build --scale demo
	$(BIN)/testbed up

test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy testbed agent_node edge_node cloud_node coordinator
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy testbed agent_node edge_node cloud_node coordinator

proto: $(VENV)/.dev
	$(PY) tools/gen_proto.py

bench: $(VENV)/.dev
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .zoo runs .pytest_cache .ruff_cache .mypy_cache
