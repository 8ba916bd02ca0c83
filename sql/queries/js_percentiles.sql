-- Sparsity (finding 1): JS percentiles and the share of near-zero-JS tokens per checkpoint and policy.
SELECT s.checkpoint, c.step, s.policy,
       count(*) AS n_tokens,
       quantile_cont(s.js, 0.50) AS js_p50,
       quantile_cont(s.js, 0.80) AS js_p80,
       quantile_cont(s.js, 0.90) AS js_p90,
       quantile_cont(s.js, 0.95) AS js_p95,
       quantile_cont(s.js, 0.99) AS js_p99,
       avg(CASE WHEN s.js < 1e-3 THEN 1.0 ELSE 0.0 END) AS share_js_lt_1e3,
       avg(CASE WHEN s.js < 1e-2 THEN 1.0 ELSE 0.0 END) AS share_js_lt_1e2,
       avg(CASE WHEN s.js > 0.1 THEN 1.0 ELSE 0.0 END) AS share_js_gt_0_1
FROM token_shifts s LEFT JOIN checkpoints c USING (checkpoint)
GROUP BY ALL
ORDER BY c.step NULLS LAST, s.checkpoint, s.policy;
