-- The sent alerts of the as-of date, every column, per team in call order (the outbox files).
-- Bound parameters: :d (as-of date).
SELECT * FROM churn_alerts WHERE as_of_date = :d AND status = 'sent' ORDER BY team, team_rank
