-- The first customers of every team's prevention list (sent alerts), in the order the team calls them.
-- Bound parameters: :d (as-of date), :k (customers per team, report.TOP_PER_TEAM).
SELECT team, team_rank, customer_id, churn_probability, risk_band, value_at_risk, reasons,
recommended_action FROM churn_alerts WHERE as_of_date = :d AND status = 'sent'
AND COALESCE(list_name, 'prevention') = 'prevention' AND team_rank <= :k ORDER BY team, team_rank
