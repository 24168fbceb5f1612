-- Non-contractual churn label for a cutoff: 1 when the customer has no activity of the configured
-- types in (:cutoff, :cutoff + horizon]. Reads only rows with ts < :label_end (cutoff + horizon + 1 day),
-- and callers only pass cutoffs whose horizon ends on or before the training date.
SELECT f.customer_id,
       CASE WHEN EXISTS (
           SELECT 1 FROM stg_transactions t
           WHERE t.customer_id = f.customer_id
             AND t.ts >= :label_start AND t.ts < :label_end
             AND COALESCE(t.type, 'purchase') IN ({activity_types})
       ) THEN 0 ELSE 1 END AS churned
FROM (SELECT DISTINCT customer_id FROM stg_transactions WHERE ts < :label_start) f
