-- Matured outreach measurements known on the as-of date, of alert days in the lookback window: pooled
-- into the call effect of the targeting curve. Bound parameters: :d (as-of date), :a (first alert day excluded).
SELECT alert_date, n_treated, n_control, churn_rate_treated, churn_rate_control
FROM outreach_results
WHERE as_of_date <= :d AND alert_date > :a
ORDER BY alert_date
