# make run: set up .venv if needed (what `gpupix run` needs, nothing more), then quantize the
#           sample images in examples/.
# make test: the same, plus the dev and dask extras (tests, linters, benchmark peers), then
#           ruff and pytest.
# make test-contract: gpupix's cuML/CuPy calls against the real packages (no GPU needed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast bench lint clean digits run-inpaint install contract-env test-contract \
	gpu-check

# An editable install in "compat" mode puts the clone itself on sys.path, so `import gpupix`
# from the clone's parent folder still finds the package, not the clone folder of that name.
EDITABLE ?= -e
EDITABLE_MODE := $(if $(EDITABLE),--config-settings editable_mode=compat,)
# install: the install step Docker runs (EXTRAS=dask for a CPU worker image); run and test
# use the same recipe with their own extras.
EXTRAS ?= dev,dask
RUN_STAMP := $(VENV)/.gpupix-installed-core
TEST_STAMP := $(VENV)/.gpupix-installed-dev-dask

define pip_install
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(EDITABLE_MODE) $(EDITABLE) "$(1)"
endef

$(RUN_STAMP): pyproject.toml
	$(call pip_install,.)
	touch $@

$(TEST_STAMP): pyproject.toml
	$(call pip_install,.[dev$(shell echo ,)dask])
	touch $@

install:
	$(call pip_install,.$(if $(EXTRAS),[$(EXTRAS)],))

run: $(RUN_STAMP)
	$(BIN)/gpupix run configs/quantize.yaml

run-inpaint: $(RUN_STAMP)
	$(BIN)/gpupix run configs/corrupt.yaml
	$(BIN)/gpupix run configs/inpaint.yaml

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# everything but the slow, browser and signal tests: the loop to run while editing
test-fast: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow and not browser and not signals"


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

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench_quantize.py
	$(BIN)/python benchmarks/bench_denoise.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_inpaint.py
	$(BIN)/python benchmarks/bench_quantize_target.py
	$(BIN)/python benchmarks/bench_report.py

digits: $(TEST_STAMP)
	$(BIN)/python examples/make_digits.py

clean:
	rm -rf out .pytest_cache
