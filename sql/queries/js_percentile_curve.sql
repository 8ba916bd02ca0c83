-- The JS percentile curve (figure 1): per checkpoint and policy, the JS value below which each
-- percentile of tokens lies (the summaries table's js_curve, at js_curve_quantiles()); plotted on a log
-- scale, the upper percentiles show where RL moved.
SELECT s.checkpoint, c.step, s.policy,
       (js_curve_quantiles()[q.i] * 100)::DOUBLE AS percentile, s.js_curve[q.i] AS js
FROM summaries s
CROSS JOIN range(1, len(js_curve_quantiles()) + 1) q(i)
LEFT JOIN checkpoints c USING (checkpoint)
ORDER BY c.step NULLS LAST, s.checkpoint, s.policy, percentile;
