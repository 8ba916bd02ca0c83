-- How the shift grows with training: per checkpoint step of each role (rl; sft for a supervised run analysed
-- beside it), accuracy with its 95% bootstrap interval over problems and the change since the role's previous
-- checkpoint with a paired interval, JS percentiles of the checkpoint's tokens (upper percentiles grow fastest),
-- the share of near-zero-JS tokens, and the share of the checkpoint-base gap that js cross-sampling moves
-- within token_budget() of tokens (forward: recovered; reverse: lost).
SELECT role, step, checkpoint, base_accuracy, base_accuracy_lo, base_accuracy_hi,
       rl_accuracy, rl_accuracy_lo, rl_accuracy_hi, rl_accuracy_change, rl_accuracy_change_lo, rl_accuracy_change_hi,
       js_p50, js_p90, js_p95, js_p99, js_mean, share_js_lt_1e3, share_js_gt_0_1,
       js_p99 / first_value(js_p99) OVER w AS js_p99_vs_first,
       js_p50 / first_value(js_p50) OVER w AS js_p50_vs_first,
       forward_js_gap_moved, forward_js_gap_moved_lo, forward_js_gap_moved_hi,
       reverse_js_gap_moved, reverse_js_gap_moved_lo, reverse_js_gap_moved_hi
FROM trend
WINDOW w AS (PARTITION BY role ORDER BY step)
ORDER BY role, step;
