-- Alert counts of the as-of date per team, list (NULL = prevention) and status.
-- Bound parameters: :d (as-of date).
SELECT team, COALESCE(list_name, 'prevention') AS list_name, status, COUNT(*) AS alerts
FROM churn_alerts WHERE as_of_date = :d GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
