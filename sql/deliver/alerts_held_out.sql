-- Control alerts within the horizon before the as-of date (customer and alert day): a customer drawn into
-- the control group stays held out until that alert's horizon has passed, so no later call blurs it.
-- Bound parameters: :a (first day of the window), :d (as-of date, excluded).
SELECT DISTINCT customer_id, as_of_date FROM churn_alerts
WHERE status = 'control' AND as_of_date >= :a AND as_of_date < :d
