-- Every customer of the as-of date with their features and, when scored, the model's score and reasons.
-- Bound parameters: :d (as-of date).
-- Placeholder: {feature_columns} is filled by pipelines/deliver/alerts.py only from its code constant
-- FEATURE_COLUMNS (as "f.<column>, ..."), never from configuration or data.
SELECT f.as_of_date, f.customer_id, {feature_columns}, s.churn_probability, s.risk_band, s.value_12m,
s.value_at_risk, s.expected_value, s.reason_1, s.reason_2, s.reason_3, s.reason_codes, s.model_version
FROM customer_features f LEFT JOIN churn_scores s
ON s.customer_id = f.customer_id AND s.as_of_date = f.as_of_date WHERE f.as_of_date = :d
