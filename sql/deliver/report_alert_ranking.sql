-- The summary of the day's latest successful build_alerts run: which ranking produced the lists, and why.
-- Bound parameters: :d (as-of date).
SELECT message FROM pipeline_runs WHERE as_of_date = :d AND step = 'build_alerts' AND status = 'ok'
ORDER BY finished_at DESC LIMIT 1
