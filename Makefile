# `make` builds the Cython kernels in place (as the original RetinaFace did); build/ keeps the objects.
# `make test` creates .venv if missing, installs this project editable with its pinned requirements
# and Cython, builds, runs pytest; `make test-fast` leaves out the tests marked slow.
VENV        ?= .venv
# The GPU build of MXNet where an NVIDIA driver answers, else the CPU build; REQUIREMENTS=... overrides.
ifeq ($(origin REQUIREMENTS), undefined)
REQUIREMENTS := $(if $(shell nvidia-smi >/dev/null 2>&1 && echo gpu),requirements-gpu.txt,requirements.txt)
REQUIREMENTS_WHY := $(if $(filter requirements-gpu.txt,$(REQUIREMENTS)),nvidia-smi works,no working nvidia-smi)
else
REQUIREMENTS_WHY := REQUIREMENTS was given
endif
SYSTEM_PYTHON ?= python3
PYTHON      := $(if $(wildcard $(VENV)/bin/python),$(VENV)/bin/python,$(SYSTEM_PYTHON))
VENV_PYTHON := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: all build venv test test-fast bench demo clean

all: build

build:
	$(PYTHON) setup.py -q build_ext --inplace

$(VENV)/.installed: $(REQUIREMENTS) pyproject.toml setup.py
	@echo "installing $(REQUIREMENTS) ($(REQUIREMENTS_WHY))"
	test -x $(VENV_PYTHON) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install -q --upgrade pip setuptools wheel 'Cython>=3.0'
	$(VENV_PYTHON) -m pip install -q -r $(REQUIREMENTS)
	touch $@

venv: $(VENV)/.installed

test: venv
	$(MAKE) build PYTHON=$(VENV_PYTHON)
	$(VENV_PYTHON) -m pytest -q $(PYTEST_ARGS)

test-fast: venv
	$(MAKE) build PYTHON=$(VENV_PYTHON)
	$(VENV_PYTHON) -m pytest -q -m 'not slow' $(PYTEST_ARGS)

# Synthetic data, a short mnet training, WIDER test + evaluation, pictures; resumes if interrupted.
demo: venv
	$(MAKE) build PYTHON=$(VENV_PYTHON)
	$(VENV_PYTHON) tools/demo.py $(DEMO_ARGS)

bench: venv
	$(MAKE) build PYTHON=$(VENV_PYTHON)
	$(VENV_PYTHON) -m bench.core

clean:
	rm -rf build *.egg-info facekit/cython/*.c rcnn/cython/*.c facekit/cython/*.so rcnn/cython/*.so
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
