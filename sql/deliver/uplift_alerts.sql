-- The sent and control alerts of the prevention lists on alert days :a to :b (the estimate's window and one
-- horizon before it, to tell a customer's first alert in a horizon): customer, team, rank, status, profile, value.
-- Bound parameters: :a (first alert date), :b (last alert date).
SELECT as_of_date, customer_id, team, team_rank, status, uplift_profile, value_12m FROM churn_alerts
WHERE as_of_date >= :a AND as_of_date <= :b AND status IN ('sent', 'control')
  AND COALESCE(list_name, 'prevention') = 'prevention'
