# accelnas: everything installs from this file and pyproject.toml, from nothing.
#   make test    create .venv (pip install -e ".[test]" + the python3 kernel), run pytest
#   make test-fast  the tests not marked slow (a few minutes)
#   make run     accelnas run $(PARAMS)  (default params/default.yaml) -> outputs/<run_name>/
#   make smoke   accelnas run params/smoke.yaml (minutes)
#   make lab     JupyterLab on the repository, opened at notebooks/
#   make search  accelnas search $(PARAMS): the search phase alone (resumes; distributed via KERASTUNER_*)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PARAMS ?= params/default.yaml
LAB_ARGS ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2
# CIFAR-10: the shared copy beside the checkout when there is one (see README, Data)
ifneq ($(wildcard ../shared/data/cifar10.npz),)
export ACCELNAS_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: venv test test-fast run smoke search lab bench clean

$(BIN)/activate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(BIN)/activate

venv: $(BIN)/activate

test: venv
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

run: venv
	$(BIN)/accelnas run $(PARAMS)

smoke: venv
	$(BIN)/accelnas run params/smoke.yaml

search: venv
	$(BIN)/accelnas search $(PARAMS)

lab: venv
	$(BIN)/jupyter lab --allow-root --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/notebooks $(LAB_ARGS)

# Runs every benchmarks/*.py script (each prints its figures).
bench: venv
	@set -e; for f in benchmarks/*.py; do [ -e "$$f" ] || continue; echo "== $$f"; $(BIN)/python "$$f"; done

clean:
	rm -rf $(VENV) .pytest_cache
