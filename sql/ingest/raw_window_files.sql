-- The (batch day, source file) pairs raw_{dataset} holds in the load window [:s, :e].
-- Bound parameters: :s (first batch day), :e (last batch day, the run date).
-- {dataset} is an identifier filled in by code: only a dataset name of
-- pipelines.core.config.DATASET_COLUMNS is substituted (pipelines.ingest.extract.ingest_sql checks it).
-- Used by pipelines/ingest/extract.py (load_landing: which files' rows to withdraw).
SELECT DISTINCT _batch_date, _source_file FROM raw_{dataset} WHERE _batch_date BETWEEN :s AND :e
