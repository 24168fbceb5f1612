# churnwatch: `make demo` and `make test` each build .venv on first use and install everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AIRFLOW_HOME := $(CURDIR)
export CHURNWATCH_CONFIG ?= $(CURDIR)/churnwatch.yaml

.PHONY: demo test airflow lint install clean

install: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

var/airflow/airflow.db: $(STAMP)
	mkdir -p var/airflow
	$(BIN)/airflow db migrate > var/airflow/db-migrate.log 2>&1 || (tail -20 var/airflow/db-migrate.log; exit 1)

demo: $(STAMP) var/airflow/airflow.db
	$(BIN)/churnwatch demo

test: $(STAMP) var/airflow/airflow.db
	$(BIN)/ruff check pipelines models dags tests
	$(BIN)/pytest

airflow: $(STAMP) var/airflow/airflow.db
	$(BIN)/airflow standalone

lint: $(STAMP)
	$(BIN)/ruff check pipelines models dags tests
	$(BIN)/ruff format --check pipelines models dags tests

clean:
	rm -rf var outbox reports data/demo
