-- One customer id from stg_customers, or no row when there is no customer master yet.
-- Bound parameters: none.
-- Used by pipelines/ingest/validation.py (_customer_reference).
SELECT customer_id FROM stg_customers LIMIT 1
