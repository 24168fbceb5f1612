"""churnwatch pipeline steps: extract, validate, features, alerts, config, CLI (no Airflow here)."""
