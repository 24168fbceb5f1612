-- The per-customer feature state anchored at :e, rolled forward from the stored state of :s.
-- A state of day S sums the rows of batches up to S with ts before S + 1 (the "settled" rows: the nightly
-- look-back never re-reads them; the validate step drops every state over batches it replaces). Rolling
-- S -> E folds in the rows the state of S lacks: batches in (S, E] with ts < E + 1, and rows of earlier
-- batches dated in (S, E]. Windowed counts and sums move by adding the new rows and subtracting the
-- state's rows that left each window ((S - w, E - w] for w = 30, 90, 180, 365 days); exponential decays
-- are multiplied by exp(-(E - S) / tau). Gap statistics are kept as exact integer sums (n, sum, sum of
-- squares). A customer with a new purchase dated before their last known purchase day would split a
-- known gap: such customers ("redo") are summed again from all their rows. Without a stored state,
-- :s is 1900-01-01 and every row is new. {new_rows} is sql/features/feature_state_new.sql. Min/max
-- columns are merged with the state as they are.
-- Bound parameters: :s, :s_next, :e, :e_next (dates), :shift_30, :shift_90 (exp(-(E - S) / tau)),
-- :x30_lo .. :x365_hi (the strips that left each window, as [lo, hi) timestamps).
-- {slice} is a condition on customer_id that keeps one slice of the customers (TRUE: all of them); every
-- row read is filtered by it, so the slices' results add up to the whole (pipelines/features/feature_state.py).
-- Amount sums are DECIMAL(38, 6) sums of each amount rounded to 6 places: exact, so adding and
-- subtracting never drifts, and independent of summation order.
WITH {new_rows},
txn_in AS NOT MATERIALIZED (
    SELECT n.* FROM txn_new n WHERE NOT EXISTS (SELECT 1 FROM redo r WHERE r.customer_id = n.customer_id)
    UNION ALL
    SELECT t.customer_id, CAST(t.ts AS DATE) AS d, t.amount, COALESCE(t.type, 'purchase') AS type
    FROM stg_transactions t
    WHERE t.customer_id IN (SELECT customer_id FROM redo) AND t._batch_date <= :e AND t.ts < :e_next AND {slice}
),
-- The state's sums that go on: the prior row unless the customer is redone.
kept AS (
    SELECT p.* FROM prior p WHERE NOT EXISTS (SELECT 1 FROM redo r WHERE r.customer_id = p.customer_id)
),
-- Purchase days sorted once, carrying only (customer, day): carrying the amounts through this sort ran out
-- of DuckDB's memory limit at 1M customers on the first night (every row new). Counts, amounts and
-- windows are grouped apart (bought), as in history_plain.sql.
purchase_days AS (
    SELECT o.customer_id, o.d, COALESCE(o.prev_d, k.last_purchase) AS prev_d
    FROM (
        SELECT customer_id, d, LAG(d) OVER (PARTITION BY customer_id ORDER BY d) AS prev_d
        FROM txn_in WHERE type = 'purchase'
    ) o
    LEFT JOIN kept k ON k.customer_id = o.customer_id
),
day_stats AS (
    SELECT customer_id,
           MAX(prev_d) FILTER (WHERE d > prev_d) AS prev_purchase,
           COUNT(*) FILTER (WHERE d > prev_d) AS gap_n,
           SUM(d - prev_d) FILTER (WHERE d > prev_d) AS gap_sum,
           SUM((d - prev_d) * (d - prev_d)) FILTER (WHERE d > prev_d) AS gap_sumsq,
           SUM(EXP(-CAST(CAST(:e AS DATE) - d AS DOUBLE PRECISION) / 30.0)) FILTER (WHERE prev_d IS NULL OR d > prev_d) AS decay_30,
           SUM(EXP(-CAST(CAST(:e AS DATE) - d AS DOUBLE PRECISION) / 90.0)) FILTER (WHERE prev_d IS NULL OR d > prev_d) AS decay_90
    FROM purchase_days GROUP BY customer_id
),
amounts AS (
    SELECT customer_id,
           MIN(d) AS first_purchase,
           MAX(d) AS last_purchase,
           COUNT(*) AS purchases_total,
           SUM(CAST(amount AS DECIMAL(18, 2))) AS amount_total,
           COUNT(*) FILTER (WHERE d > CAST(:e AS DATE) - 30) AS p30,
           COUNT(*) FILTER (WHERE d > CAST(:e AS DATE) - 90) AS p90,
           COUNT(*) FILTER (WHERE d > CAST(:e AS DATE) - 180) AS p180,
           COUNT(*) FILTER (WHERE d > CAST(:e AS DATE) - 365) AS p365,
           SUM(CAST(amount AS DECIMAL(38, 6))) FILTER (WHERE d > CAST(:e AS DATE) - 30) AS s30,
           SUM(CAST(amount AS DECIMAL(38, 6))) FILTER (WHERE d > CAST(:e AS DATE) - 90) AS s90,
           SUM(CAST(amount AS DECIMAL(38, 6))) FILTER (WHERE d > CAST(:e AS DATE) - 180) AS s180,
           SUM(CAST(amount AS DECIMAL(38, 6))) FILTER (WHERE d > CAST(:e AS DATE) - 365) AS s365
    FROM txn_in WHERE type = 'purchase' GROUP BY customer_id
),
bought AS (
    SELECT a.*, g.prev_purchase, g.gap_n, g.gap_sum, g.gap_sumsq, g.decay_30, g.decay_90
    FROM amounts a JOIN day_stats g ON g.customer_id = a.customer_id
),
-- The state's purchases that left a window between S and E.
left_windows AS (
    SELECT customer_id,
           COUNT(*) FILTER (WHERE w = 30) AS p30, COUNT(*) FILTER (WHERE w = 90) AS p90,
           COUNT(*) FILTER (WHERE w = 180) AS p180, COUNT(*) FILTER (WHERE w = 365) AS p365,
           SUM(a) FILTER (WHERE w = 30) AS s30, SUM(a) FILTER (WHERE w = 90) AS s90,
           SUM(a) FILTER (WHERE w = 180) AS s180, SUM(a) FILTER (WHERE w = 365) AS s365
    FROM (
        SELECT customer_id, 30 AS w, CAST(amount AS DECIMAL(38, 6)) AS a FROM stg_transactions
        WHERE _batch_date <= :s AND ts >= :x30_lo AND ts < :x30_hi AND COALESCE(type, 'purchase') = 'purchase'
          AND {slice}
        UNION ALL
        SELECT customer_id, 90 AS w, CAST(amount AS DECIMAL(38, 6)) AS a FROM stg_transactions
        WHERE _batch_date <= :s AND ts >= :x90_lo AND ts < :x90_hi AND COALESCE(type, 'purchase') = 'purchase'
          AND {slice}
        UNION ALL
        SELECT customer_id, 180 AS w, CAST(amount AS DECIMAL(38, 6)) AS a FROM stg_transactions
        WHERE _batch_date <= :s AND ts >= :x180_lo AND ts < :x180_hi AND COALESCE(type, 'purchase') = 'purchase'
          AND {slice}
        UNION ALL
        SELECT customer_id, 365 AS w, CAST(amount AS DECIMAL(38, 6)) AS a FROM stg_transactions
        WHERE _batch_date <= :s AND ts >= :x365_lo AND ts < :x365_hi AND COALESCE(type, 'purchase') = 'purchase'
          AND {slice}
    ) strips
    GROUP BY customer_id
),
other AS (
    SELECT customer_id, MIN(d) AS first_txn, MAX(d) AS last_txn FROM txn_in WHERE type <> 'purchase' GROUP BY customer_id
),
contacts_new AS (
    SELECT customer_id,
           MAX(CAST(ts AS DATE)) AS last_contact,
           MAX(CAST(ts AS DATE)) FILTER (WHERE event_type = 'complaint') AS last_complaint
    FROM (
        SELECT customer_id, ts, event_type FROM stg_service_events
        WHERE _batch_date > :s AND _batch_date <= :e AND ts < :e_next AND {slice}
        UNION ALL
        SELECT customer_id, ts, event_type FROM stg_service_events
        WHERE _batch_date <= :s AND ts >= :s_next AND ts < :e_next AND {slice}
    ) e
    GROUP BY customer_id
),
everyone AS (
    SELECT customer_id FROM prior
    UNION SELECT customer_id FROM bought
    UNION SELECT customer_id FROM other
    UNION SELECT customer_id FROM contacts_new
)
SELECT
    CAST(:e AS DATE) AS state_date,
    c.customer_id,
    LEAST(COALESCE(p.first_purchase, b.first_purchase), COALESCE(b.first_purchase, p.first_purchase)) AS first_purchase,
    GREATEST(COALESCE(p.last_purchase, b.last_purchase), COALESCE(b.last_purchase, p.last_purchase)) AS last_purchase,
    COALESCE(b.prev_purchase, k.prev_purchase) AS prev_purchase,
    COALESCE(k.purchases_total, 0) + COALESCE(b.purchases_total, 0) AS purchases_total,
    COALESCE(k.amount_total, 0) + COALESCE(b.amount_total, 0) AS amount_total,
    COALESCE(k.gap_n, 0) + COALESCE(b.gap_n, 0) AS gap_n,
    COALESCE(k.gap_sum, 0) + COALESCE(b.gap_sum, 0) AS gap_sum,
    COALESCE(k.gap_sumsq, 0) + COALESCE(b.gap_sumsq, 0) AS gap_sumsq,
    COALESCE(k.decay_30 * :shift_30, 0) + COALESCE(b.decay_30, 0) AS decay_30,
    COALESCE(k.decay_90 * :shift_90, 0) + COALESCE(b.decay_90, 0) AS decay_90,
    COALESCE(k.p30, 0) - COALESCE(x.p30, 0) + COALESCE(b.p30, 0) AS p30,
    COALESCE(k.p90, 0) - COALESCE(x.p90, 0) + COALESCE(b.p90, 0) AS p90,
    COALESCE(k.p180, 0) - COALESCE(x.p180, 0) + COALESCE(b.p180, 0) AS p180,
    COALESCE(k.p365, 0) - COALESCE(x.p365, 0) + COALESCE(b.p365, 0) AS p365,
    COALESCE(k.s30, 0) - COALESCE(x.s30, 0) + COALESCE(b.s30, 0) AS s30,
    COALESCE(k.s90, 0) - COALESCE(x.s90, 0) + COALESCE(b.s90, 0) AS s90,
    COALESCE(k.s180, 0) - COALESCE(x.s180, 0) + COALESCE(b.s180, 0) AS s180,
    COALESCE(k.s365, 0) - COALESCE(x.s365, 0) + COALESCE(b.s365, 0) AS s365,
    LEAST(COALESCE(p.first_txn, o.first_txn), COALESCE(o.first_txn, p.first_txn)) AS first_txn,
    GREATEST(COALESCE(p.last_txn, o.last_txn), COALESCE(o.last_txn, p.last_txn)) AS last_txn,
    GREATEST(COALESCE(p.last_contact, n.last_contact), COALESCE(n.last_contact, p.last_contact)) AS last_contact,
    GREATEST(COALESCE(p.last_complaint, n.last_complaint), COALESCE(n.last_complaint, p.last_complaint)) AS last_complaint
FROM everyone c
LEFT JOIN prior p ON p.customer_id = c.customer_id
LEFT JOIN kept k ON k.customer_id = c.customer_id
LEFT JOIN bought b ON b.customer_id = c.customer_id
LEFT JOIN left_windows x ON x.customer_id = k.customer_id
LEFT JOIN other o ON o.customer_id = c.customer_id
LEFT JOIN contacts_new n ON n.customer_id = c.customer_id
