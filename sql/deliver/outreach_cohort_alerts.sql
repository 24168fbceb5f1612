-- The sent and control alerts of one alert day's prevention lists (their customers were active, so
-- "churned" means the same for all): customer, team, rank, status and 12-month value.
-- Bound parameters: :d (alert date).
SELECT customer_id, team, team_rank, status, value_12m FROM churn_alerts
WHERE as_of_date = :d AND status IN ('sent', 'control') AND COALESCE(list_name, 'prevention') = 'prevention'
