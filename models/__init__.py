"""churnwatch models: training set, training, registry and scoring (no Airflow here)."""
