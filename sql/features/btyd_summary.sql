-- BG/NBD summary of one customer_features partition, compressed to distinct histories:
-- x = repeat purchase days, t_x = days from the first to the last purchase day, t_cal = days from the
-- first purchase day to the as-of date, n = customers with that history. Customers who never bought
-- carry no BG/NBD information. Bound parameter: :as_of (date).
SELECT purchase_days_total - 1 AS x, purchase_span_days AS t_x, first_purchase_age_days AS t_cal, COUNT(*) AS n
FROM customer_features
WHERE as_of_date = :as_of AND purchase_days_total > 0
GROUP BY purchase_days_total, purchase_span_days, first_purchase_age_days
-- A fixed row order keeps the fit's floating-point sums, and so every re-run's scores, bit-identical.
ORDER BY x, t_x, t_cal
