# make run: set up .venv if needed, then quantize the sample images in examples/.
# make test: set up .venv if needed, then ruff and pytest.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gpupix-installed

.PHONY: run test bench lint clean digits run-inpaint install

# The one install step: CI (make test) and docker/Dockerfile.cpu both run it.
EXTRAS ?= dev,report,dask
EDITABLE ?= -e

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(EDITABLE) ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/gpupix run configs/quantize.yaml

run-inpaint: $(STAMP)
	$(BIN)/gpupix run configs/corrupt.yaml
	$(BIN)/gpupix run configs/inpaint.yaml

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_quantize.py
	$(BIN)/python benchmarks/bench_denoise.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_inpaint.py
	$(BIN)/python benchmarks/bench_quantize_target.py
	$(BIN)/python benchmarks/bench_report.py

digits: $(STAMP)
	$(BIN)/python examples/make_digits.py

clean:
	rm -rf out .pytest_cache
