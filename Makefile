# The two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck imports unit bench clean messages

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dosewise demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck imports unit

bench: $(STAMP)
	$(BIN)/python bench/plan.py

# Refresh the message template and every language's catalogue from the code's texts.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg --project dosewise --no-location --sort-output -o i18n/dosewise.pot \
		i18n schemas planner scheduler notifier tracker services store reports dosewise
	$(BIN)/pybabel update --ignore-obsolete -i i18n/dosewise.pot -d i18n/locales -D dosewise

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
