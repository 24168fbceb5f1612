-- Which ranking ordered each list of the as-of date, with how many alerts it ordered (alerts built by a
-- version that did not record it say 'not recorded'). Bound parameters: :d (as-of date).
SELECT COALESCE(list_name, 'prevention') AS list_name, COALESCE(ranking, 'not recorded') AS ranking,
COUNT(*) AS alerts
FROM churn_alerts WHERE as_of_date = :d
GROUP BY COALESCE(list_name, 'prevention'), COALESCE(ranking, 'not recorded')
ORDER BY list_name, ranking
