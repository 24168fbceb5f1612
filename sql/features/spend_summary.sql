-- Gamma-Gamma summary of one customer_features partition: the repeat customers' purchase days x and mean
-- spend per purchase day m (lifetime purchase spend / purchase days). One purchase day carries no spread,
-- so those customers are left out of the fit (models/spend.py gives them the population mean).
-- Bound parameter: :as_of (date).
SELECT purchase_days_total AS x,
       CAST(avg_order_value * purchases_total AS DOUBLE PRECISION) / purchase_days_total AS m
FROM customer_features
WHERE as_of_date = :as_of AND purchase_days_total >= 2 AND avg_order_value IS NOT NULL
-- A fixed row order keeps the fit, and so every re-run's values, bit-identical.
ORDER BY x, m
