-- The plain reading of the KPIs' per-customer inputs, every one from each customer's whole history: the
-- oracle that sql/kpis/churn_kpis_daily.sql (the whole history only for the customers who may be lost)
-- is tested against in tests/features/test_kpis.py. It ends with per_customer; the test appends the
-- product query from its `flags` CTE on, so the two differ only in how per_customer is computed.
-- Placeholder: {activity_types}, as in the product query.
WITH txns AS NOT MATERIALIZED (
    SELECT customer_id, CAST(ts AS DATE) AS d, amount,
           COALESCE(type, 'purchase') IN ({activity_types}) AS is_activity
    FROM stg_transactions
    WHERE ts < :as_of_next
),
spending AS (
    SELECT customer_id,
           MIN(d) AS first_seen,
           MAX(d) FILTER (WHERE is_activity AND d <= CAST(:period_start AS DATE)) AS last_at_start,
           MAX(d) FILTER (WHERE is_activity) AS last_at_end,
           MIN(d) FILTER (WHERE is_activity) AS first_day,
           SUM(CAST(amount AS DECIMAL(18, 2))) FILTER (WHERE is_activity)
               / NULLIF(COUNT(*) FILTER (WHERE is_activity), 0) AS avg_order_value,
           SUM(CAST(amount AS DECIMAL(18, 2))) FILTER (WHERE is_activity AND d > CAST(:period_start AS DATE))
               AS revenue_period
    FROM txns GROUP BY customer_id
),
cancels AS (
    SELECT customer_id, MIN(CAST(ts AS DATE)) AS cancel_day
    FROM stg_cancellations WHERE ts < :as_of_next GROUP BY customer_id
),
-- Activity days are counted only for customers who may be lost in the period (their usual revenue needs
-- the rhythm; a superset of `lost` below): a distinct count over every customer's history cost most of
-- the query at 1M customers.
lost_days AS (
    SELECT a.customer_id, COUNT(DISTINCT a.d) AS active_days
    FROM txns a
    JOIN spending s ON s.customer_id = a.customer_id
    LEFT JOIN cancels c ON c.customer_id = a.customer_id
    WHERE a.is_activity AND CASE WHEN :contractual = 1 THEN c.cancel_day > CAST(:period_start AS DATE)
               ELSE s.last_at_start > CAST(:period_start AS DATE) - :horizon
                    AND s.last_at_end <= CAST(:as_of AS DATE) - :horizon END
    GROUP BY a.customer_id
),
known AS (
    SELECT customer_id, MIN(d) AS known_since
    FROM (
        SELECT customer_id, first_seen AS d FROM spending
        UNION ALL
        SELECT customer_id, COALESCE(signup_date, _batch_date) FROM stg_customers
        WHERE _batch_date <= CAST(:as_of AS DATE)
    ) k
    GROUP BY customer_id
),
per_customer AS (
    SELECT k.customer_id, k.known_since, c.cancel_day, s.last_at_start, s.last_at_end, s.first_day,
           ld.active_days, s.avg_order_value, s.revenue_period, s.last_at_end AS last_recent
    FROM known k
    LEFT JOIN spending s ON s.customer_id = k.customer_id
    LEFT JOIN cancels c ON c.customer_id = k.customer_id
    LEFT JOIN lost_days ld ON ld.customer_id = k.customer_id
),
