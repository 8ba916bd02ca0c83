-- How the shift grows with training: per RL checkpoint step, accuracy, JS percentiles of RL tokens
-- (upper percentiles grow fastest), the share of near-zero-JS tokens, and the share of the RL-base gap
-- that js cross-sampling moves within a 10% token budget (forward: recovered; reverse: lost).
SELECT step, checkpoint, base_accuracy, rl_accuracy,
       js_p50, js_p90, js_p95, js_p99, js_mean, share_js_lt_1e3, share_js_gt_0_1,
       js_p99 / first_value(js_p99) OVER (ORDER BY step) AS js_p99_vs_first,
       js_p50 / first_value(js_p50) OVER (ORDER BY step) AS js_p50_vs_first,
       forward_js_gap_moved, reverse_js_gap_moved
FROM trend
ORDER BY step;
