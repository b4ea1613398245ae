-- monthly
SELECT /* total */ SUM(quantity) FROM usage_events -- done
;