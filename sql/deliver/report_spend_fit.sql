-- The spend model behind the as-of date's expected values (spend_fits). Bound parameters: :d (as-of date).
SELECT method, period_days, p, q, gamma, population_mean, n_customers, reason FROM spend_fits WHERE as_of_date = :d
