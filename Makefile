# The two README commands: `make demo` (set up + run the end-to-end demo) and `make test`
# (set up + run the test suite). Both build a local .venv from nothing but this clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.flatkd-installed
RUN    ?= runs/demo
PYTEST_ARGS ?= -n 2
# `make test-py312`: the suite on Python 3.12 with the oldest torch pyproject.toml accepts, in its
# own venv (not part of .ci/run: the torch wheel for 3.12 comes from PyPI, ~0.8 GB plus ~2.5 GB of
# CUDA libraries it depends on; PYTHON312= and TORCH312= choose others, e.g. 3.13 and 2.5.1)
PYTHON312 ?= $(shell python3.12 -c "import sys; print(sys.executable)" 2>/dev/null || ls $$HOME/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)
TORCH312  ?= 2.4.1
VENV312   ?= .venv-py312

.PHONY: setup demo figures test test-py312 bench bench-gpu clean

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

test-py312: $(VENV312)/.flatkd-installed
	$(VENV312)/bin/python -m pytest $(PYTEST_ARGS)

$(VENV312)/.flatkd-installed: pyproject.toml
	$(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install --quiet torch==$(TORCH312)
	$(VENV312)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

# the CPU benchmarks; `make bench-gpu` (benchmarks/gpu.py) needs a GPU (sized for about 8 minutes there)
bench: $(STAMP)
	for b in $(filter-out benchmarks/gpu.py,$(wildcard benchmarks/*.py)); do $(BIN)/python $$b || exit 1; done

bench-gpu: $(STAMP)
	$(BIN)/python benchmarks/gpu.py

clean:
	rm -rf $(VENV) $(VENV312) .pytest_cache build *.egg-info
