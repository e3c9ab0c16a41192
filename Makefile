# The two set-up commands of the README: `make train` (the main job) and `make test`;
# `make bench` runs the full benchmark suite.
# Both create the virtual environment, install the pinned torch and build the extension first.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
MAX_JOBS ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.rnnfast-built
SOURCES := setup.py pyproject.toml $(wildcard csrc/*.cpp csrc/*.h csrc/cuda/*.cu csrc/cuda/*.cuh csrc/cuda/*.cpp)

.PHONY: install train test bench clean

# The test extra brings fastai and matplotlib for their tests; $(TORCH) is named in every pip call
# so that resolving them can never replace the pinned torch.
$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH) numpy pybind11 ninja setuptools wheel
	MAX_JOBS=$(MAX_JOBS) $(BIN)/pip install -q --no-build-isolation -e '.[test]' $(TORCH)
	touch $@

install: $(STAMP)

train: install
	$(BIN)/rnnfast train

test: install
	$(BIN)/python -m pytest -q

# The benchmark suite's full run (~10-15 min on 2 cores); its outputs are what the README shows.
bench: install
	$(BIN)/python -m benchmarks.bench --full --json benchmarks/results/full.json \
		--png benchmarks/results/full.png --md benchmarks/results/full.md

clean:
	rm -rf build dist rnnfast/_C*.so rnnfast/_build_info.py *.egg-info
