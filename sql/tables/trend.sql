-- The trend table: one row per analysed RL checkpoint, by step, from every checkpoint's summaries and
-- cross_summaries: accuracy, the JS percentiles and near-zero share of RL tokens, and the share of the
-- RL-base gap the js rule picked by the cross_sampling_budget query moves, per direction.
WITH rl AS (
    SELECT checkpoint, accuracy AS rl_accuracy, n_tokens, js_mean, js_p50, js_p80, js_p90, js_p95, js_p99,
           share_js_lt_1e3, share_js_gt_0_1
    FROM summaries WHERE policy = 'rl'
),
base AS (
    SELECT checkpoint, accuracy AS base_accuracy FROM summaries WHERE policy = 'base'
),
picked AS (
    SELECT checkpoint,
           any_value(gap_moved) FILTER (WHERE direction = 'forward') AS forward_js_gap_moved,
           any_value(gap_moved) FILTER (WHERE direction = 'reverse') AS reverse_js_gap_moved
    FROM cross_sampling_budget GROUP BY checkpoint
)
SELECT c.checkpoint, c.step, b.base_accuracy, rl.* EXCLUDE (checkpoint), p.* EXCLUDE (checkpoint)
FROM checkpoints c
JOIN base b USING (checkpoint)
JOIN rl USING (checkpoint)
LEFT JOIN picked p USING (checkpoint)
WHERE c.role = 'rl'
ORDER BY c.step NULLS LAST, c.checkpoint
