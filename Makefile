# Two commands on a fresh machine: `make demo` (end-to-end run) and `make test` (the suite).
# Both create .venv and install what they need (pinned by constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: demo test dev bench lint lock clean-demo

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]' -c constraints.txt
	touch $@

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install -q -e '.[dev,bench]' -c constraints.txt
	touch $@

demo: $(BIN)/.installed
	$(BIN)/style-pipeline demo

test: $(BIN)/.installed
	$(BIN)/pytest

dev: $(BIN)/.installed
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

bench: $(BIN)/.bench-installed
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

lint: $(BIN)/.installed
	$(BIN)/ruff check style_pipeline style_pipeline_tests benchmarks
	$(BIN)/hadolint docker/Dockerfile

lock: $(BIN)/.bench-installed
	$(BIN)/pip freeze --exclude-editable > constraints.txt

clean-demo:
	rm -rf data/storage .dagster
