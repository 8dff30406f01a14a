# The two set-up commands (see README): `make demo` runs the main job end to end, `make test` the tests.
# Both create .venv and install fgvc with everything it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := configs/demo.yaml

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fgvc data verify $(DEMO)
	$(BIN)/fgvc train $(DEMO)
	@cat configs/demo_reference.txt

# one pytest-xdist worker per core (at most 4); a test file stays on one worker, so its module
# fixtures are built once
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

clean:
	rm -rf runs .pytest_cache
