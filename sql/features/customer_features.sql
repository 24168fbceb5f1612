-- Features per customer as of :as_of. Reads only events with ts < :as_of_next (the day after :as_of).
-- Sums and means are cast to DECIMAL: parallel float sums differ in the last bits between runs, and
-- re-runs (and models trained on them) must be identical. Ratios divide DOUBLE PRECISION values, so
-- DuckDB, PostgreSQL and Spark give the same bits (their DECIMAL divisions round differently).
-- Bound parameters: :as_of (date), :as_of_next (date), :window_start (:as_of - 89, the first day of the
-- 90-day windows), :contacts_start (:window_start - :repeat_days, so the window's first contacts see
-- the one before), :dormant_short, :dormant_long, :repeat_days, lifecycle and loyalty thresholds
-- (:new_days, :reactivated_days, :at_risk_overdue, :regular_min_purchases, :regular_max_cv,
-- :long_term_span, :short_term_span). Definitions: docs/features.md.
-- {history} is replaced by the lifetime CTEs (rfm, gaps, other_dates, contact_dates): history_plain.sql
-- reads all history, history_state.sql the stored per-customer state rolled forward to :as_of.
-- {negative_note} is replaced by a condition of bound LIKE parameters built from the config lexicon.
-- The 90-day windows read only their own days (ts >= :window_start): a ticket resolved before the window
-- changes no open-ticket count, and a contact before :contacts_start is no repeat of one in the window.
WITH {history},
-- Refunds, deposits, withdrawals and payments of the last 90 days: a few percent of the rows.
txn_other AS (
    SELECT customer_id,
           COUNT(*) FILTER (WHERE type = 'refund') AS refunds_90d,
           COUNT(*) FILTER (WHERE type IN ('deposit', 'withdrawal')) AS flows_90d,
           CAST(COALESCE(SUM(amount) FILTER (WHERE type IN ('deposit', 'withdrawal')), 0) AS DECIMAL(18, 2)) AS net_flow_90d
    FROM stg_transactions
    WHERE ts >= :window_start AND ts < :as_of_next AND COALESCE(type, 'purchase') <> 'purchase'
    GROUP BY customer_id
),
contacts AS (
    SELECT customer_id, ts, CAST(ts AS DATE) AS d, event_type, wait_seconds, resolved, transferred,
           CASE WHEN {negative_note} THEN 1 ELSE 0 END AS negative_note,
           LAG(ts) OVER (PARTITION BY customer_id ORDER BY ts) AS prev_ts
    FROM stg_service_events
    WHERE ts >= :contacts_start AND ts < :as_of_next
),
last_resolved AS (
    SELECT customer_id, MAX(ts) AS ts FROM contacts WHERE resolved GROUP BY customer_id
),
service AS (
    SELECT c.customer_id,
           COUNT(*) FILTER (WHERE c.d > CAST(:as_of AS DATE) - 30) AS contacts_30d,
           COUNT(*) FILTER (WHERE c.d > CAST(:as_of AS DATE) - 90) AS contacts_90d,
           COUNT(*) FILTER (WHERE c.d > CAST(:as_of AS DATE) - 90 AND c.prev_ts IS NOT NULL
                            AND CAST(c.ts AS DATE) - CAST(c.prev_ts AS DATE) <= :repeat_days) AS repeat_contacts_90d,
           COUNT(*) FILTER (WHERE c.d > CAST(:as_of AS DATE) - 90 AND c.event_type = 'complaint') AS complaints_90d,
           CAST(AVG(c.wait_seconds) FILTER (WHERE c.d > CAST(:as_of AS DATE) - 90) AS DECIMAL(18, 4)) AS mean_wait_90d,
           MAX(c.wait_seconds) FILTER (WHERE c.d > CAST(:as_of AS DATE) - 90) AS max_wait_90d,
           COUNT(*) FILTER (WHERE c.d > CAST(:as_of AS DATE) - 90 AND c.transferred) AS transfers_90d,
           COUNT(*) FILTER (WHERE c.d > CAST(:as_of AS DATE) - 90 AND c.resolved = FALSE
                            AND (lr.ts IS NULL OR c.ts > lr.ts)) AS open_tickets,
           SUM(c.negative_note) FILTER (WHERE c.d > CAST(:as_of AS DATE) - 90) AS negative_notes_90d
    FROM contacts c LEFT JOIN last_resolved lr ON lr.customer_id = c.customer_id
    GROUP BY c.customer_id
),
answers AS (
    SELECT customer_id, CAST(ts AS DATE) AS d, nps_score,
           ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY ts DESC) AS rn
    FROM stg_surveys WHERE ts < :as_of_next
),
nps AS (
    SELECT a1.customer_id, a1.nps_score AS last_nps, a1.d AS last_nps_date,
           a1.nps_score - a2.nps_score AS nps_change
    FROM answers a1 LEFT JOIN answers a2 ON a2.customer_id = a1.customer_id AND a2.rn = 2
    WHERE a1.rn = 1
),
cancels AS (
    SELECT DISTINCT customer_id FROM stg_cancellations WHERE ts < :as_of_next
),
profile AS (
    SELECT customer_id, signup_date, region, segment, contract_end, do_not_contact, team, campaign_until
    FROM (
        SELECT s.*, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY _batch_date DESC, _source_row DESC) AS rn
        FROM stg_customers s WHERE _batch_date <= CAST(:as_of AS DATE)
    ) latest
    WHERE rn = 1
),
population AS (
    SELECT customer_id FROM profile WHERE signup_date IS NULL OR signup_date <= CAST(:as_of AS DATE)
    UNION
    SELECT customer_id FROM rfm
    UNION
    SELECT customer_id FROM other_dates
),
base AS (
SELECT
    CAST(:as_of AS DATE) AS as_of_date,
    p.customer_id,
    CAST(:as_of AS DATE) - COALESCE(pr.signup_date, LEAST(COALESCE(r.first_purchase, od.first_txn), COALESCE(od.first_txn, r.first_purchase))) AS tenure_days,
    CAST(:as_of AS DATE) - r.last_purchase AS days_since_last_purchase,
    CAST(:as_of AS DATE) - GREATEST(COALESCE(r.last_purchase, od.last_txn, cd.last_contact), COALESCE(od.last_txn, cd.last_contact, r.last_purchase),
                                     COALESCE(cd.last_contact, r.last_purchase, od.last_txn)) AS days_since_last_activity,
    COALESCE(r.purchases_30d, 0) AS purchases_30d,
    COALESCE(r.purchases_90d, 0) AS purchases_90d,
    COALESCE(r.purchases_prev_90d, 0) AS purchases_prev_90d,
    COALESCE(r.purchases_365d, 0) AS purchases_365d,
    COALESCE(r.purchases_total, 0) AS purchases_total,
    COALESCE(r.spend_30d, 0) AS spend_30d,
    COALESCE(r.spend_90d, 0) AS spend_90d,
    COALESCE(r.spend_prev_90d, 0) AS spend_prev_90d,
    COALESCE(r.spend_365d, 0) AS spend_365d,
    r.avg_order_value,
    g.mean_gap_days,
    g.std_gap_days,
    CAST(CAST(:as_of AS DATE) - r.last_purchase AS DOUBLE PRECISION)
        / CAST(NULLIF(g.mean_gap_days, 0) AS DOUBLE PRECISION) AS overdue_ratio,
    CAST(COALESCE(r.spend_90d, 0) + 1 AS DOUBLE PRECISION)
        / CAST(COALESCE(r.spend_prev_90d, 0) + 1 AS DOUBLE PRECISION) AS spend_trend_ratio,
    CAST(COALESCE(r.purchases_90d, 0) + 1 AS DOUBLE PRECISION)
        / CAST(COALESCE(r.purchases_prev_90d, 0) + 1 AS DOUBLE PRECISION) AS purchase_trend_ratio,
    COALESCE(t.refunds_90d, 0) AS refunds_90d,
    CASE WHEN t.flows_90d > 0 THEN t.net_flow_90d END AS net_flow_90d,
    g.last_gap_days,
    r.last_purchase - r.first_purchase AS purchase_span_days,
    CASE WHEN r.customer_id IS NULL THEN 0 ELSE COALESCE(g.repeat_purchase_days, 0) + 1 END AS purchase_days_total,
    CAST(:as_of AS DATE) - r.first_purchase AS first_purchase_age_days,
    COALESCE(g.purchase_days_decay_30, 0) AS purchase_days_decay_30,
    COALESCE(g.purchase_days_decay_90, 0) AS purchase_days_decay_90,
    CASE WHEN CAST(:as_of AS DATE) - r.last_purchase >= :dormant_short THEN 1 ELSE 0 END AS dormant_short,
    CASE WHEN CAST(:as_of AS DATE) - r.last_purchase >= :dormant_long THEN 1 ELSE 0 END AS dormant_long,
    COALESCE(s.contacts_30d, 0) AS contacts_30d,
    COALESCE(s.contacts_90d, 0) AS contacts_90d,
    COALESCE(s.repeat_contacts_90d, 0) AS repeat_contacts_90d,
    COALESCE(s.complaints_90d, 0) AS complaints_90d,
    s.mean_wait_90d,
    s.max_wait_90d,
    COALESCE(s.transfers_90d, 0) AS transfers_90d,
    COALESCE(s.open_tickets, 0) AS open_tickets,
    CAST(:as_of AS DATE) - cd.last_complaint AS days_since_last_complaint,
    COALESCE(s.negative_notes_90d, 0) AS negative_notes_90d,
    n.last_nps,
    CASE WHEN n.last_nps >= 9 THEN 'promoter' WHEN n.last_nps >= 7 THEN 'passive'
         WHEN n.last_nps IS NOT NULL THEN 'detractor' END AS nps_group,
    n.nps_change,
    CAST(:as_of AS DATE) - n.last_nps_date AS days_since_last_nps,
    CASE WHEN pr.contract_end IS NOT NULL AND pr.contract_end > CAST(:as_of AS DATE) THEN 1 ELSE 0 END AS locked_in,
    COALESCE(pr.do_not_contact, FALSE) AS do_not_contact,
    pr.region,
    pr.segment,
    pr.team,
    CASE WHEN ca.customer_id IS NOT NULL THEN 1 ELSE 0 END AS cancelled,
    CASE WHEN pr.campaign_until >= CAST(:as_of AS DATE) THEN 1 ELSE 0 END AS in_campaign
FROM population p
LEFT JOIN profile pr ON pr.customer_id = p.customer_id
LEFT JOIN rfm r ON r.customer_id = p.customer_id
LEFT JOIN gaps g ON g.customer_id = p.customer_id
LEFT JOIN other_dates od ON od.customer_id = p.customer_id
LEFT JOIN txn_other t ON t.customer_id = p.customer_id
LEFT JOIN contact_dates cd ON cd.customer_id = p.customer_id
LEFT JOIN service s ON s.customer_id = p.customer_id
LEFT JOIN nps n ON n.customer_id = p.customer_id
LEFT JOIN cancels ca ON ca.customer_id = p.customer_id
),
-- R, F and M quintiles among customers with a purchase, sorted over four narrow columns: a window
-- over base would carry its forty columns through each of the three sorts.
rfm_scores AS (
    SELECT customer_id,
           NTILE(5) OVER (ORDER BY CAST(:as_of AS DATE) - last_purchase DESC, customer_id) AS r_score,
           NTILE(5) OVER (ORDER BY purchases_365d, customer_id) AS f_score,
           NTILE(5) OVER (ORDER BY spend_365d, customer_id) AS m_score
    FROM rfm
),
scored AS (
    SELECT b.*, sc.r_score, sc.f_score, sc.m_score
    FROM base b LEFT JOIN rfm_scores sc ON sc.customer_id = b.customer_id
)
SELECT s.*,
    CASE
        WHEN r_score IS NULL THEN 'no purchase'
        WHEN r_score >= 4 AND f_score + m_score >= 8 THEN 'champions'
        WHEN r_score >= 4 AND purchases_total = 1 THEN 'new'
        WHEN r_score >= 3 AND f_score + m_score >= 6 THEN 'loyal'
        WHEN r_score >= 3 THEN 'potential'
        WHEN f_score + m_score >= 6 THEN 'at risk'
        WHEN r_score = 2 THEN 'hibernating'
        ELSE 'lost'
    END AS rfm_segment,
    CASE
        WHEN days_since_last_purchase IS NULL AND tenure_days < :new_days THEN 'new'
        WHEN days_since_last_purchase IS NULL THEN 'lost'
        WHEN days_since_last_purchase >= :dormant_long THEN 'lost'
        WHEN days_since_last_purchase >= :dormant_short THEN 'dormant'
        WHEN last_gap_days >= :dormant_short AND days_since_last_purchase < :reactivated_days THEN 'reactivated'
        WHEN tenure_days < :new_days THEN 'new'
        WHEN overdue_ratio >= :at_risk_overdue THEN 'at risk'
        ELSE 'active'
    END AS lifecycle_stage,
    CASE
        WHEN purchases_total = 0 THEN 'none'
        WHEN purchases_total = 1 THEN 'one-time'
        WHEN purchases_total >= :regular_min_purchases
             AND COALESCE(std_gap_days, 0) <= :regular_max_cv * mean_gap_days THEN 'regular'
        WHEN purchase_span_days >= :long_term_span THEN 'long-term'
        WHEN purchase_span_days < :short_term_span THEN 'short-term'
        ELSE 'occasional'
    END AS loyalty_type
FROM scored s
