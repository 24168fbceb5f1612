# churnwatch: `make demo` and `make test` each build .venv on first use and install everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark
DEV_STAMP := $(VENV)/.installed-dev
export AIRFLOW_HOME := $(CURDIR)
export CHURNWATCH_CONFIG ?= $(CURDIR)/churnwatch.yaml

.PHONY: demo test airflow lint install clean chromium bench spark

install: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Optional Spark engine (pyspark, sqlglot): installed by make test for the Spark equality test.
spark: $(SPARK_STAMP)

$(SPARK_STAMP): $(STAMP) requirements-spark.txt
	$(BIN)/python -m pip install --quiet -r requirements-spark.txt -c constraints.txt
	touch $(SPARK_STAMP)

# Test-only packages (the reference BG/NBD implementation and its CDNOW data): installed by make test.
$(DEV_STAMP): $(STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(DEV_STAMP)

var/airflow/airflow.db: $(STAMP)
	mkdir -p var/airflow
	$(BIN)/airflow db migrate > var/airflow/db-migrate.log 2>&1 || (tail -20 var/airflow/db-migrate.log; exit 1)

# The report test opens the HTML report in Debian's Chromium; install it once if the machine lacks it.
chromium:
	@mkdir -p var; command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian's chromium package (for the report's browser test)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get install -y -q chromium > var/apt-chromium.log 2>&1 || \
	  { $$SUDO apt-get update -q >> var/apt-chromium.log 2>&1 && \
	    $$SUDO apt-get install -y -q chromium >> var/apt-chromium.log 2>&1; } || \
	  { tail -20 var/apt-chromium.log; exit 1; }; }

demo: $(STAMP) var/airflow/airflow.db
	$(BIN)/churnwatch demo

test: $(STAMP) $(SPARK_STAMP) $(DEV_STAMP) var/airflow/airflow.db chromium
	$(BIN)/ruff check pipelines models dags tests
	$(BIN)/pytest

# Not part of make test: a 1M-customer run takes a long time. Results land in bench/results/.
bench: $(STAMP)
	$(BIN)/churnwatch bench --customers 100000 --name 100k
	$(BIN)/churnwatch bench --customers 1000000 --name 1m

# airflow standalone starts its scheduler, API server and DAG processor as `airflow` from PATH: the venv goes first.
# Another port: AIRFLOW__API__PORT=8090 make airflow
airflow: $(STAMP) var/airflow/airflow.db
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/airflow standalone

lint: $(STAMP)
	$(BIN)/ruff check pipelines models dags tests
	$(BIN)/ruff format --check pipelines models dags tests

clean:
	rm -rf var outbox reports data/demo test-artifacts
