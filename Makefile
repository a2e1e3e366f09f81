# textlstm — make train / make test work from a fresh clone with only python3 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= configs/sms_spam.toml

# Plain `pip install torch` resolves to a multi-GB CUDA build on Linux. Where a CPU wheel of
# torch lies in /opt/wheels (our dev and CI machines) use it; elsewhere pip picks torch
# itself (set TORCH_SPEC / PIP_EXTRA to choose, e.g. PIP_EXTRA="--index-url ...").
TORCH_WHEEL := $(firstword $(wildcard /opt/wheels/torch-*+cpu-cp$(shell $(PYTHON) -c 'import sys;print(f"{sys.version_info[0]}{sys.version_info[1]}")' 2>/dev/null)-*.whl))
ifneq ($(TORCH_WHEEL),)
TORCH_SPEC ?= --find-links /opt/wheels torch==$(word 2,$(subst -, ,$(notdir $(TORCH_WHEEL))))
endif

# Tests never touch the network: the hub fails at once, caches go to a temporary HF_HOME.
TEST_ENV := HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1

.PHONY: install train test lint bench bench-accuracy bench-speed clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_EXTRA) $(TORCH_SPEC) -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/textlstm train --config $(CONFIG) $(ARGS)

test: $(STAMP)
	@hf_home=$$(mktemp -d); \
	$(TEST_ENV) HF_HOME=$$hf_home $(BIN)/python -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	rm -rf $$hf_home; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# Training/inference speed: textbook vs textlstm vs ceiling (docs/BENCHMARKS.md). On a CPU use
# a subsample: make bench-speed ARGS="--subsample 8000 --threads 1"
bench-speed: $(STAMP)
	$(TEST_ENV) $(BIN)/python bench/speed.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check textlstm tests bench
	$(BIN)/ruff format --check textlstm tests bench

# Benchmarks (bench/): baselines need the [bench] extra; datasets are read from ../shared/data
# and .suite-data/ (built by bench/suite_data.py).
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q $(PIP_EXTRA) $(TORCH_SPEC) -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# Both benchmarks, quick forms (minutes on a 2-core CPU); see docs/USAGE.md, "Presets and benchmarks".
bench:
	$(MAKE) bench-accuracy QUICK=1
	$(MAKE) bench-speed ARGS="--dataset sst2 --subsample 8000 $(ARGS)"

bench-accuracy: $(BENCH_STAMP)
	$(TEST_ENV) $(BIN)/python bench/accuracy.py $(if $(QUICK),--quick) --write docs/BENCHMARKS.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
