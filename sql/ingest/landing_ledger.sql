-- The landing_files ledger of one dataset: every landing file already loaded, by name and content
-- (SHA-256), with the batch day it was given and when it was loaded.
-- Bound parameter: :ds (dataset name).
-- Used by pipelines/ingest/extract.py (landing_files).
SELECT file_name, sha256, batch_date, loaded_at FROM landing_files WHERE dataset = :ds
