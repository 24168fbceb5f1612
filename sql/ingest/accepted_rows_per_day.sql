-- Rows read per accepted batch day (status ok or warn) of one dataset in [:a, :b), from dq_runs:
-- batch_date and n (the largest rows_read any run recorded for that day).
-- Bound parameters: :ds (dataset name), :a (first day, inclusive), :b (the run date, exclusive).
-- Used by pipelines/ingest/validation.py (trailing_volume: the volume check's trailing median).
SELECT batch_date, MAX(rows_read) AS n FROM dq_runs
WHERE dataset = :ds AND batch_date >= :a AND batch_date < :b AND status IN ('ok', 'warn')
GROUP BY batch_date
