-- The lifetime part of the features from the per-customer state (sql/features/feature_state_roll.sql)
-- rolled forward to :as_of: the same CTEs and columns as history_plain.sql (rfm, gaps, other_dates,
-- contact_dates), without reading all history. {roll} is replaced by the roll's SELECT.
-- The DECIMAL(38, 6) window sums are rounded to cents through DECIMAL(18, 6): the same value (up to
-- 10^12 a customer), and DuckDB rounds a 128-bit decimal about 100 times slower (2 s per column at 1M).
rolled AS (
{roll}
),
rfm AS (
    SELECT customer_id, first_purchase, last_purchase,
           p30 AS purchases_30d,
           p90 AS purchases_90d,
           p180 - p90 AS purchases_prev_90d,
           p365 AS purchases_365d,
           CAST(CAST(s30 AS DECIMAL(18, 6)) AS DECIMAL(18, 2)) AS spend_30d,
           CAST(CAST(s90 AS DECIMAL(18, 6)) AS DECIMAL(18, 2)) AS spend_90d,
           CAST(CAST(s180 - s90 AS DECIMAL(18, 6)) AS DECIMAL(18, 2)) AS spend_prev_90d,
           CAST(CAST(s365 AS DECIMAL(18, 6)) AS DECIMAL(18, 2)) AS spend_365d,
           CAST(amount_total AS DOUBLE PRECISION) / purchases_total AS avg_order_value,
           purchases_total
    FROM rolled WHERE purchases_total > 0
),
-- The sample standard deviation from exact integer sums: sqrt((n * sum(g^2) - sum(g)^2) / (n (n - 1))).
gaps AS (
    SELECT customer_id,
           CAST(CAST(gap_sum AS DOUBLE PRECISION) / NULLIF(gap_n, 0) AS DECIMAL(18, 6)) AS mean_gap_days,
           CAST(CASE WHEN gap_n > 1 THEN SQRT(CAST(gap_n * gap_sumsq - gap_sum * gap_sum AS DOUBLE PRECISION)
                                              / (CAST(gap_n AS DOUBLE PRECISION) * (gap_n - 1))) END
                AS DECIMAL(18, 6)) AS std_gap_days,
           last_purchase - prev_purchase AS last_gap_days,
           gap_n AS repeat_purchase_days,
           CAST(decay_30 AS DECIMAL(18, 6)) AS purchase_days_decay_30,
           CAST(decay_90 AS DECIMAL(18, 6)) AS purchase_days_decay_90
    FROM rolled WHERE purchases_total > 0
),
other_dates AS (
    SELECT customer_id, first_txn, last_txn FROM rolled WHERE first_txn IS NOT NULL
),
contact_dates AS (
    SELECT customer_id, last_contact, last_complaint FROM rolled WHERE last_contact IS NOT NULL
)
