-- The callable part of each team's prevention list on the as-of date, in call order: alerts sent or over
-- capacity (control and cooldown customers are not called, whatever the capacity), with a model score.
-- Bound parameters: :d (as-of date).
SELECT team, COALESCE(list_name, 'prevention') AS list_name, team_rank, churn_probability, value_at_risk, ranking
FROM churn_alerts
WHERE as_of_date = :d AND COALESCE(list_name, 'prevention') = 'prevention' AND status IN ('sent', 'overflow')
  AND churn_probability IS NOT NULL
ORDER BY team, team_rank
