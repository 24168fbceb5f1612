-- Alerts sent in the cooldown window before the as-of date: customer, risk band then, and the day.
-- Bound parameters: :a (window start, included), :d (as-of date, excluded).
SELECT customer_id, risk_band, as_of_date FROM churn_alerts
WHERE status = 'sent' AND as_of_date >= :a AND as_of_date < :d
