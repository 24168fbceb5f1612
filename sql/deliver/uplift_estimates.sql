-- The uplift estimates of one night, one row per profile (and 'all', the pooled effect).
-- Bound parameters: :d (as-of date).
SELECT profile, n_treated, n_control, churn_rate_treated, churn_rate_control, effect, ci_low, ci_high, source
FROM uplift_estimates WHERE as_of_date = :d ORDER BY profile
