# Two commands do everything on a fresh clone (see README.md):
#   make study   - the whole study on the synthetic set (default profile) into results/synthetic/
#                  (make study SEEDS=3: the committed results, every stream trained with three seeds)
#   make test    - the test suite (ruff, unit tests, the notebooks under nbval); HTSC_FP32=1 make test runs it
#                  as a CPU without native bf16 does
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROFILE ?= default
SEED ?= 0
SEEDS ?= 1
export PYTHONHASHSEED := 0

.PHONY: setup study test lab smoke-data data clean notebooks gpu-check

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

study: $(STAMP)
	$(BIN)/htsc reproduce --dataset synthetic --profile $(PROFILE) --data-root data/synthetic-$(PROFILE) --seed $(SEED) --seeds $(SEEDS)

# The notebooks are committed with the smoke profile's outputs; nbval re-runs them (fresh runs/smoke)
# and fails when a check fails or a stable output changes.
test: smoke-data
	$(BIN)/ruff check htsc_core tests notebooks
	rm -rf runs/smoke results/smoke .nbval.log
	# The notebooks under nbval (runs/smoke, results/smoke) and the tests (temporary folders, two xdist workers)
	# share no files, so they run side by side on the two cores; nbval's report is printed after the tests'.
	# One thread per process there (OMP_NUM_THREADS=1, inherited by kernels and subprocesses): three busy processes
	# of two threads each on two cores spin against each other (measured: 795 s against 720 s for the tests,
	# nbval 377 against 265 s); nbval's outputs are the same with one thread as with two.
	# Then the checks of what nbval's run of the notebooks wrote (tests/test_smoke_outputs.py), and the
	# paper-profile dry run (tests/test_paper_dry_run.py) alone: its time is reported on its own, and -rP prints what
	# reproduce printed (each notebook's seconds).
	start=$$SECONDS; \
	OMP_NUM_THREADS=1 TQDM_DISABLE=1 $(BIN)/python -m pytest -q -p no:cacheprovider --nbval \
		--nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks > .nbval.log 2>&1 & nbval=$$!; \
	OMP_NUM_THREADS=1 TQDM_DISABLE=1 $(BIN)/python -m pytest -q -n 2 -m "not paper and not smoke_outputs" --durations=15 \
		tests; tests=$$?; \
	wait $$nbval; notebooks=$$?; echo "--- notebooks under nbval"; cat .nbval.log; \
	TQDM_DISABLE=1 $(BIN)/python -m pytest -q -p no:cacheprovider -m smoke_outputs tests; outputs=$$?; \
	echo "--- unit, end-to-end and notebook tests: $$((SECONDS - start)) s"; start=$$SECONDS; \
	TQDM_DISABLE=1 $(BIN)/python -m pytest -q -rP -p no:cacheprovider -m paper tests; paper=$$?; \
	echo "--- paper-profile dry run: $$((SECONDS - start)) s"; exit $$(( tests || notebooks || outputs || paper ))

# Re-execute the committed notebooks in place with their default (smoke) parameters, for nbval.
notebooks: smoke-data
	rm -rf runs/smoke results/smoke
	for nb in notebooks/[0-9][0-9]_*.ipynb; do TQDM_DISABLE=1 $(BIN)/papermill --cwd notebooks -k python3 --no-progress-bar "$$nb" "$$nb" || exit 1; done

lab: smoke-data
	$(BIN)/jupyter lab --notebook-dir=notebooks

clean:
	rm -rf runs data/synthetic-smoke results/smoke

# Issue 37's GPU check: the paper profile's scoring (250 views a video, batch 32) and validation passes on a generated
# tree, peak device memory and views per second per stage -> gpu_check.json (GPUS=N: torchrun with N processes)
GPUS ?= 1
gpu-check: $(STAMP)
	if [ "$(GPUS)" -gt 1 ]; then $(BIN)/torchrun --nproc_per_node $(GPUS) -m htsc_core.bench.gpu_check --out gpu_check.json; \
	else $(BIN)/python -m htsc_core.bench.gpu_check --out gpu_check.json; fi
