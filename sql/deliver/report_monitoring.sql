-- The as-of date's model monitoring rows; drift (PSI) rows only when not ok.
-- Bound parameters: :d (as-of date).
SELECT metric, subject, value, threshold, status FROM model_monitoring WHERE as_of_date = :d
AND (metric <> 'psi' OR status <> 'ok') ORDER BY metric, subject
