-- Contractual churn label for a cutoff: 1 when the customer cancels in [:label_start, :label_end)
-- (the horizon after the cutoff). Customers are those known before :label_start; callers keep only
-- customers not yet cancelled at the cutoff and only cutoffs whose horizon has ended by the training date.
SELECT p.customer_id,
       CASE WHEN EXISTS (
           SELECT 1 FROM stg_cancellations c
           WHERE c.customer_id = p.customer_id AND c.ts >= :label_start AND c.ts < :label_end
       ) THEN 1 ELSE 0 END AS churned
FROM (
    SELECT customer_id FROM stg_transactions WHERE ts < :label_start
    UNION
    SELECT customer_id FROM stg_customers WHERE _batch_date < :label_start
) p
