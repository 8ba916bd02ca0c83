-- RL against SFT (the paper's contrast: SFT shifts many more tokens): per step where checkpoints of more than one
-- role were analysed, each role's accuracy with its 95% bootstrap interval, sparsity along its own samples
-- (share of tokens with JS < near_zero_js() and > high_js(), JS p50 / p90 / p99), position (share of the
-- top-5%-JS tokens in the first tenth of the response; uniform: 0.10), reranking (at JS > high_js(), the
-- checkpoint's top-1 in the base's top 3) and the share of its gap to the base that forward js cross-sampling
-- moves within token_budget() of tokens (held-out half; the trend's). Where one role ran alone, no row.
WITH own AS (
    SELECT c.role, c.step, s.checkpoint, s.accuracy, s.accuracy_lo, s.accuracy_hi, s.n_tokens,
           s.share_js_lt_1e3, s.share_js_gt_0_1, s.js_p50, s.js_p90, s.js_p99,
           s.position_top5pct_share[1] AS top5pct_share_first_tenth, s.n_high_js, s.high_js_rl_top1_in_base_top3
    FROM summaries s JOIN checkpoints c USING (checkpoint)
    WHERE s.policy = 'rl' AND c.role <> 'base' AND c.step IS NOT NULL
)
SELECT o.step, o.role, o.checkpoint, o.accuracy, o.accuracy_lo, o.accuracy_hi, o.n_tokens,
       o.share_js_lt_1e3, o.share_js_gt_0_1, o.js_p50, o.js_p90, o.js_p99, o.top5pct_share_first_tenth,
       o.n_high_js, o.high_js_rl_top1_in_base_top3,
       t.forward_js_gap_moved, t.forward_js_gap_moved_lo, t.forward_js_gap_moved_hi
FROM own o LEFT JOIN trend t USING (checkpoint)
WHERE o.step IN (SELECT step FROM own GROUP BY step HAVING count(DISTINCT role) > 1)
ORDER BY o.step, o.role;
