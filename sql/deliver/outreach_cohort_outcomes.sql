-- What the teams reported for one alert day: contacted and result per imported outcome row.
-- Bound parameters: :d (alert date).
SELECT contacted, result FROM alert_outcomes WHERE alert_date = :d
