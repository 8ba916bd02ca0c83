-- Sparsity (finding 1): JS percentiles and the share of near-zero-JS tokens per checkpoint and policy
-- (the summaries table's columns; sql/tables/summaries.sql defines them).
SELECT s.checkpoint, c.step, s.policy, s.n_tokens,
       s.js_p50, s.js_p80, s.js_p90, s.js_p95, s.js_p99,
       s.share_js_lt_1e3, s.share_js_lt_1e2, s.share_js_gt_0_1
FROM summaries s LEFT JOIN checkpoints c USING (checkpoint)
ORDER BY c.step NULLS LAST, s.checkpoint, s.policy;
