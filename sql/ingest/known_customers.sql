-- The customer ids among the keys loaded into the temporary table _cw_keys(k) that stg_customers
-- holds from batches before :b.
-- Bound parameter: :b (first batch day of the window). _cw_keys is filled by
-- pipelines.core.warehouse.read_for_keys.
-- Used by pipelines/ingest/validation.py (known_customers).
SELECT DISTINCT c.customer_id FROM stg_customers c JOIN _cw_keys k ON c.customer_id = k.k
WHERE c._batch_date < :b
