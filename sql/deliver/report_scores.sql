-- The as-of date's churn scores (probability and risk band), for the score distribution chart.
-- Bound parameters: :d (as-of date).
SELECT churn_probability, risk_band FROM churn_scores WHERE as_of_date = :d
