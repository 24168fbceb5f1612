-- Overall churn KPIs per day over the year up to the as-of date, oldest first (the report's trend charts).
-- Bound parameters: :d (as-of date, included), :a (as-of date minus 365 days, excluded).
SELECT as_of_date, churn_rate, lost_revenue, nps, customers_lost, customers_active_start
FROM churn_kpis_daily WHERE segment_type = 'all' AND as_of_date <= :d AND as_of_date > :a
ORDER BY as_of_date
