# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
# Both create .venv and install shopscore with the exact versions in constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/shopscore demo

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check registry plugins tests bench feature_repo migrations
	$(BIN)/ruff format --check registry plugins tests bench feature_repo migrations
	$(BIN)/mypy  # registry and plugins: [tool.mypy] in pyproject.toml

clean:
	rm -rf $(VENV) .shopscore
