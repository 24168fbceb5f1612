-- The latest 12 measured outreach results (sent vs control) known on the as-of date, newest first.
-- Bound parameters: :d (as-of date).
SELECT alert_date, n_treated, n_control, churn_rate_treated, churn_rate_control, churn_reduction,
ci_low, ci_high, revenue_retained FROM outreach_results WHERE as_of_date <= :d
ORDER BY alert_date DESC LIMIT 12
