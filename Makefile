# The two README commands: `make demo` (set up + run the end-to-end demo) and `make test`
# (set up + run the test suite). Both build a local .venv from nothing but this clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.flatkd-installed
RUN    ?= runs/demo
PYTEST_ARGS ?= -n 2

.PHONY: setup demo figures test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/flatkd demo --run $(RUN)

# the paper figures of analyses/ from the demo run (running the demo first if it is unfinished)
figures: demo
	$(BIN)/python analyses/render.py --run $(RUN) --out figures

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
