-- The customers of the as-of date an alert may pick, with their features and, when scored, the model's
-- score and reasons. With :everyone = 0 (the night has scores), only scored customers and dormant
-- accounts (3-6 months quiet: dormant_short and not dormant_long): no trigger may pick anyone else
-- (pipelines/deliver/alerts.py, _candidates), and at 1M customers this reads 0.6M rows instead of 1M.
-- Bound parameters: :d (as-of date), :everyone (1: every customer, for a night without scores).
-- Placeholder: {feature_columns} is filled by pipelines/deliver/alerts.py only from its code constant
-- FEATURE_COLUMNS (as "f.<column>, ..."), never from configuration or data.
SELECT f.as_of_date, f.customer_id, {feature_columns}, s.churn_probability, s.risk_band, s.value_12m,
s.value_at_risk, s.expected_value, s.reason_1, s.reason_2, s.reason_3, s.reason_codes, s.model_version
FROM customer_features f LEFT JOIN churn_scores s
ON s.customer_id = f.customer_id AND s.as_of_date = f.as_of_date WHERE f.as_of_date = :d
AND (:everyone = 1 OR s.customer_id IS NOT NULL OR (f.dormant_short = 1 AND f.dormant_long = 0))
