-- The as-of date's churn KPIs per segment (region, segment, ...), without the overall row.
-- Bound parameters: :d (as-of date).
SELECT segment_type, segment, customers_active_start, customers_lost, churn_rate, lost_revenue, nps
FROM churn_kpis_daily WHERE as_of_date = :d AND segment_type <> 'all' ORDER BY segment_type, segment
