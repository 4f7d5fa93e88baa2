# make run: set up .venv if needed, then quantize the sample images in examples/.
# make test: set up .venv if needed, then ruff and pytest.
# make test-contract: gpupix's cuML/CuPy calls against the real packages (no GPU needed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.gpupix-installed

.PHONY: run test bench lint clean digits run-inpaint install contract-env test-contract gpu-check

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

# The real GPU wheels live in a cache outside the clone (keyed on the pins), not in .venv.
CONTRACT_VENV ?= $(HOME)/.cache/gpupix/contract-venv
export CONTRACT_VENV

contract-env:
	.ci/contract-env

# GPUPIX_CONTRACT_REQUIRED turns "cuML does not import" from a skip into a failure here.
test-contract: contract-env
	GPUPIX_CONTRACT_REQUIRED=1 PYTHONPATH=$(CURDIR) \
		$(CONTRACT_VENV)/bin/python -m pytest -q -p no:cacheprovider -m contract tests/contract

# On a machine with an NVIDIA GPU: gpu-marked tests, cuda vs cpu agreement for every job
# kind, benchmarks side by side -> out/gpu-check.json (under 10 minutes). Its own .venv-gpu
# holds the cuda extra; without a GPU it says so and installs nothing.
GPU_VENV ?= .venv-gpu

gpu-check:
	@if ! nvidia-smi -L >/dev/null 2>&1; then \
		echo "gpu-check: SKIPPED: no NVIDIA GPU answers here (nvidia-smi -L)." \
		     "Run it on a machine with one."; \
		exit 0; \
	fi; \
	$(MAKE) install VENV=$(GPU_VENV) EXTRAS=dev,report,dask,cuda && \
	$(GPU_VENV)/bin/python benchmarks/gpu_check.py

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
