# Two commands do everything on a fresh clone (see README.md):
#   make study   - the whole study on the synthetic set (default profile) into results/synthetic/
#   make test    - the test suite (unit tests + the notebooks under nbval)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROFILE ?= default
SEED ?= 0
export PYTHONHASHSEED := 0

.PHONY: setup study test lab smoke-data data clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (htsc .venv)" >/dev/null
	touch $@

setup: $(STAMP)

data/synthetic-$(PROFILE)/classes.json: $(STAMP)
	$(BIN)/htsc synth --out data/synthetic-$(PROFILE) --profile $(PROFILE) --seed $(SEED)

data: data/synthetic-$(PROFILE)/classes.json

smoke-data: $(STAMP)
	$(MAKE) --no-print-directory data PROFILE=smoke

study: data
	$(BIN)/htsc reproduce --dataset synthetic --profile $(PROFILE) --data-root data/synthetic-$(PROFILE)

test: smoke-data
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q --nbval --sanitize-with notebooks/nbval_sanitize.cfg notebooks

lab: smoke-data
	$(BIN)/jupyter lab --notebook-dir=notebooks

clean:
	rm -rf runs data/synthetic-smoke results/smoke
