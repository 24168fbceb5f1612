-- Data quality of the day's batch per dataset: rows read, loaded and quarantined, and the worst status.
-- Bound parameters: :d (as-of date, also the batch date).
SELECT dataset, SUM(rows_read) AS rows_read, SUM(rows_loaded) AS rows_loaded,
SUM(rows_quarantined) AS rows_quarantined, MAX(status) AS status FROM dq_runs
WHERE as_of_date = :d AND batch_date = :d GROUP BY dataset ORDER BY dataset
