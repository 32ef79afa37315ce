# avkit: `make demo` (set up + main job), `make test` (set up + tests).
# Both are idempotent: the install step reruns only when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo test test-all lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) experiments/demo.py --out runs/demo

# pytest exits 5 when it collected nothing; treat that as a failure of the suite's wiring.
test: $(VENV)/.installed-dev
	$(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests were collected"; exit 1; fi; exit $$rc

test-all:
	$(MAKE) test PYTEST_ARGS=""

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check avkit experiments benchmarks tests

bench: $(VENV)/.installed
	$(PY) benchmarks/frontend.py
	$(PY) benchmarks/retrieval.py

clean:
	rm -rf runs .pytest_cache
