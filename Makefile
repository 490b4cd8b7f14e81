# crawl2gpt: `make demo` runs the whole DAG on the bundled sample, `make test` runs the tests.
# Both create .venv and install the project first.

PYTHON     ?= python3
VENV       ?= .venv
# A CPU build of torch that the machine has on local disk; override e.g. TORCH_SPEC='torch==2.5.1'
# or TORCH_SPEC='torch --index-url https://download.pytorch.org/whl/cu124' for a GPU box.
TORCH_SPEC ?= torch==2.13.0
PY         := $(VENV)/bin/python
RUN_DIR    ?= runs/demo
PYTEST_ARGS ?=
# A test that hangs fails the run after this many seconds with every thread's stack (pytest-timeout),
# instead of holding CI until its own limit; the slowest slow test takes about 2 minutes on 2 cores.
TEST_TIMEOUT ?= 900
PYTEST     := $(PY) -m pytest -q --timeout=$(TEST_TIMEOUT) --timeout-method=thread
# No telemetry: this is often a machine with no route out.
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup demo ablate-demo test test-slow test-all lint ui serve clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/crawl2gpt run --input data/sample/CC-SAMPLE-A-00002.warc.gz --workdir $(RUN_DIR) --config configs/demo.yaml
	$(VENV)/bin/crawl2gpt generate --ckpt $(RUN_DIR)/train --prompt "Die " --max-new-tokens 60

# Does filtering make a better model? The bundled sample curated twice (the demo's filters, and every
# filter rule off: language, Gopher, C4, FineWeb; PII masking and dedup stay), then the same small GPT
# trained 3 seeds x 307,200 tokens (150 steps) on each and compared in bits per byte (docs/ablation.md).
ABLATE_DIR  ?= runs/ablate-demo
FILTERS_OFF := $(foreach f,language gopher_quality gopher_repetition c4 fineweb,--set filter.$(f).enabled=false)
ablate-demo: setup
	$(VENV)/bin/crawl2gpt run --input data/sample/CC-SAMPLE-A-00002.warc.gz --workdir $(ABLATE_DIR)/filters-on --config configs/demo.yaml --until shards
	$(VENV)/bin/crawl2gpt run --input data/sample/CC-SAMPLE-A-00002.warc.gz --workdir $(ABLATE_DIR)/filters-off --config configs/demo.yaml $(FILTERS_OFF) --until shards
	$(VENV)/bin/crawl2gpt ablate $(ABLATE_DIR)/filters-on $(ABLATE_DIR)/filters-off --out $(ABLATE_DIR)/ablation --config configs/ablate-demo.yaml --tokens 307200

# Three tiers (README, "Tests and benchmarks"): `test` the fast tier (at most 5 minutes on 2 cores;
# pyproject.toml's addopts leave out the markers slow, gpu and nightly), `test-slow` the tests marked
# slow, `test-all` both tiers and the gpu tests (which skip without CUDA). `pytest -m nightly` runs
# the long fuzzing and load runs, which no make target and no CI run starts. `test` lints first
# (a second): a style slip fails CI like a broken test.
test: setup lint
	$(PYTEST) $(PYTEST_ARGS)

test-slow: setup
	$(PYTEST) -m "slow and not nightly" $(PYTEST_ARGS)

test-all: setup
	$(PYTEST) -m "not nightly" $(PYTEST_ARGS)

# ruff's lint rules and formatting ([tool.ruff] in pyproject.toml) over the whole repository.
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf runs/demo runs/ablate-demo .pytest_cache

# A local Prefect server on 127.0.0.1:4200 plus `crawl2gpt serve` (runs what the UI starts).
ui: setup
	VENV=$(VENV) deployments/ui.sh

# Serve the deployments against an existing server (PREFECT_API_URL must be set).
serve: setup
	$(VENV)/bin/crawl2gpt serve --workdir runs/scheduled
