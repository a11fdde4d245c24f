# Two commands on a fresh machine with only Python: `make demo` and `make test` (`make docs`: the API reference).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the package metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,compare,distributed,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m experiments run hil_vs_digital

# Two worker processes, whole modules per worker (tests of a module share their compiled functions).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

# The API reference, from the docstrings, into docs/api/ (open docs/api/index.html); a warning or a broken
# cross-reference fails the build.
docs: $(STAMP)
	$(BIN)/python docs/build_api_reference.py docs/api

clean:
	rm -rf $(VENV) results docs/api
