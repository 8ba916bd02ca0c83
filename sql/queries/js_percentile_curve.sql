-- The JS percentile curve (figure 1): per checkpoint and policy, the JS value below which each
-- percentile of tokens lies; plotted on a log scale, the upper percentiles show where RL moved.
SELECT s.checkpoint, any_value(c.step) AS step, s.policy,
       unnest([1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9]) AS percentile,
       unnest(quantile_cont(s.js, [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99,
                                   0.995, 0.999])) AS js
FROM token_shifts s LEFT JOIN checkpoints c USING (checkpoint)
GROUP BY s.checkpoint, s.policy
ORDER BY step NULLS LAST, s.checkpoint, s.policy, percentile;
