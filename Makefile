# churnwatch: `make demo` and `make test` each build .venv on first use and install everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.installed-spark
DEV_STAMP := $(VENV)/.installed-dev
# The peers the benchmark compares with (lifetimes, PyMC-Marketing) live in a venv of their own.
PEERS_VENV := var/peers-venv
PEERS_STAMP := $(PEERS_VENV)/.installed
export AIRFLOW_HOME := $(CURDIR)
export CHURNWATCH_CONFIG ?= $(CURDIR)/churnwatch.yaml

.PHONY: demo test airflow lint install clean chromium bench spark peers-venv

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

# Benchmark-only peers, never in .venv: `make bench` times them against churnwatch's feature build.
peers-venv: $(PEERS_STAMP)

$(PEERS_STAMP): requirements-peers.txt
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r requirements-peers.txt
	touch $(PEERS_STAMP)

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
	$(BIN)/pytest -n 2 --dist loadfile

# Not part of make test: a 1M-customer run takes a long time. Results land in bench/results/.
# The 1m run also times lifetimes and PyMC-Marketing side by side on 10M of its transactions (the 100k
# run has about 3.2M, too few).
bench: $(STAMP) $(PEERS_STAMP)
	$(BIN)/churnwatch bench --customers 100000 --name 100k --no-peers
	$(BIN)/churnwatch bench --customers 1000000 --name 1m --peers-python $(PEERS_VENV)/bin/python

# airflow standalone starts its scheduler, API server and DAG processor as `airflow` from PATH: the venv goes first.
# Another port: AIRFLOW__API__PORT=8090 make airflow
airflow: $(STAMP) var/airflow/airflow.db
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/airflow standalone

lint: $(STAMP)
	$(BIN)/ruff check pipelines models dags tests
	$(BIN)/ruff format --check pipelines models dags tests

clean:
	rm -rf var outbox reports data/demo test-artifacts
