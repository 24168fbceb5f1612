-- The alerts of the days named in an outcomes file: customer, day, status and team, to check the file against.
-- Bound parameters: :d (a list of dates; bound as an expanding IN parameter).
SELECT customer_id, as_of_date, status, team FROM churn_alerts WHERE as_of_date IN :d
