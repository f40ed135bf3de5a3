# accelnas: everything installs from this file and pyproject.toml, from nothing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PARAMS ?= params/default.yaml
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv test run smoke lab bench clean

$(BIN)/activate: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[test]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(BIN)/activate

venv: $(BIN)/activate

test: venv
	$(BIN)/pytest $(PYTEST_ARGS)

run: venv
	$(BIN)/accelnas run $(PARAMS)

smoke: venv
	$(BIN)/accelnas run params/smoke.yaml

lab: venv
	$(BIN)/jupyter lab --allow-root --notebook-dir=. notebooks

clean:
	rm -rf $(VENV) .pytest_cache
