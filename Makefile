# pixelwise — every target installs what it needs into .venv from nothing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torchvision (detection models and ops) needs a torch it was built against: 2.14.1 with 0.29.1
# (from the local disk here). A GPU user passes a CUDA build of the pair, see README.
TORCH ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install train test test-full test-slow ci lint format bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,sweep,slurm,tensorboard]"
	# Compile BoundaryF's numba kernels into their on-disk cache now, not at a user's first call.
	$(PY) -c "from pixelwise.metrics.boundary_f import warm_up; print(f'BoundaryF kernels compiled in {warm_up():.0f} s')"
	touch $@

install: $(VENV)/.installed

train: install
	$(PY) train.py $(ARGS)

test: install
	WANDB_MODE=offline $(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

test-full: install
	WANDB_MODE=offline $(PY) -m pytest -q $(PYTEST_ARGS)

# The slow tests alone: `make test` + `make test-slow` = `make test-full`.
test-slow: install
	WANDB_MODE=offline $(PY) -m pytest -m slow -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks train.py evaluate.py match.py setup.py
	$(VENV)/bin/ruff format --check src tests benchmarks train.py evaluate.py match.py setup.py

# What .ci/run runs: lint, then the whole suite (slow tests included; `make test` is the quick loop).
# CI: lint, the README's test command, then the slow tests (together the whole suite).
ci: lint test test-slow

format: install
	$(VENV)/bin/ruff format src tests benchmarks train.py evaluate.py match.py setup.py
	$(VENV)/bin/ruff check --fix src tests benchmarks train.py evaluate.py match.py setup.py

bench: install
	$(PY) benchmarks/run.py $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun wandb .pytest_cache .ruff_cache build src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
