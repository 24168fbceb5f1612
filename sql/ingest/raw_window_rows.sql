-- Every row of raw_{dataset} in the validation window [:s, :e], in delivery order
-- (batch day, source file, line), so row ids and "first copy wins" are stable across re-runs.
-- Bound parameters: :s (first batch day), :e (last batch day, the run date).
-- {dataset} is an identifier filled in by code: only a dataset name of
-- pipelines.core.config.DATASET_COLUMNS is substituted (pipelines.ingest.extract.ingest_sql checks it).
-- Used by pipelines/ingest/validation.py (read_raw_window).
SELECT * FROM raw_{dataset} WHERE _batch_date BETWEEN :s AND :e
ORDER BY _batch_date, _source_file, _source_row
