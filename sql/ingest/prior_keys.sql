-- The rows of stg_{dataset} from batches before :b whose natural key {key} is among the keys loaded
-- into the temporary table _cw_keys(k): the columns {columns} (the key first, then the columns that
-- must agree when the same key arrives again). _cw_keys has only the column k, so the names need no alias.
-- Bound parameter: :b (first batch day of the window). _cw_keys is filled by
-- pipelines.core.warehouse.read_for_keys.
-- {dataset}, {key} and {columns} are identifiers filled in by code: {dataset} only with a dataset name of
-- pipelines.core.config.DATASET_COLUMNS, {key} and {columns} only with that dataset's columns
-- (pipelines.ingest.extract.ingest_sql checks both).
-- Used by pipelines/ingest/validation.py (prior_keys).
SELECT {columns} FROM stg_{dataset} s JOIN _cw_keys k ON s.{key} = k.k WHERE s._batch_date < :b
