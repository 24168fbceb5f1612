-- The targeting curves of the as-of date, per team and list in order of customers called.
-- Bound parameters: :d (as-of date).
SELECT team, list_name, ranking, n_called, list_length, capacity, at_capacity, expected_churners,
value_at_risk_covered, value_period_days, effect, effect_low, effect_high, effect_source, effect_note,
expected_value_saved, value_saved_low, value_saved_high
FROM targeting_curve WHERE as_of_date = :d ORDER BY team, list_name, n_called
