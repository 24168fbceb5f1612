-- The failing-check counts (JSON text) of the day's batch per dataset, for "What failed today".
-- Bound parameters: :d (as-of date, also the batch date).
SELECT dataset, checks FROM dq_runs WHERE as_of_date = :d AND batch_date = :d AND checks IS NOT NULL
