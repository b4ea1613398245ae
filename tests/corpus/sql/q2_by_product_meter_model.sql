SELECT product_id, meter_id, model_id, SUM(quantity) AS quantity, COUNT(*) AS n
FROM usage_events
WHERE account_id = 'acc_42' AND timestamp_ms >= TIMESTAMP '2026-05-01' AND timestamp_ms < TIMESTAMP '2026-06-01'
GROUP BY product_id, meter_id, model_id
ORDER BY product_id, meter_id, model_id;