-- The message of the latest successful monitor_model run of the day, for the report's "Today" note.
-- Bound parameters: :d (as-of date).
SELECT message FROM pipeline_runs WHERE as_of_date = :d AND step = 'monitor_model' AND status = 'ok'
ORDER BY finished_at DESC LIMIT 1
