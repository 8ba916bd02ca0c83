-- The trend table: one row per analysed checkpoint, by role (rl, then sft: a supervised run's, analysed the same
-- way) and step, from every checkpoint's summaries and
-- cross_summaries: accuracy with its bootstrap interval over problems, the change since the previous
-- checkpoint with a paired interval (the same resampled problems for both; null where the problem sets
-- differ), the JS percentiles and near-zero share of RL tokens, and the share of the RL-base gap the js rule
-- picked by the cross_sampling_budget query moves, per direction, with its interval (chosen on the selection
-- half of the problems, reported on the held-out half). The rl_* columns are the checkpoint's own policy (on an
-- sft row, the SFT model's), as the summaries' policy 'rl' is; changes are within a role.
WITH rl AS (
    SELECT checkpoint, accuracy AS rl_accuracy, accuracy_lo AS rl_accuracy_lo, accuracy_hi AS rl_accuracy_hi,
           n_tokens, js_mean, js_p50, js_p80, js_p90, js_p95, js_p99, share_js_lt_1e3, share_js_gt_0_1,
           problem_set, accuracy_replicates
    FROM summaries WHERE policy = 'rl'
),
base AS (
    SELECT checkpoint, accuracy AS base_accuracy, accuracy_lo AS base_accuracy_lo, accuracy_hi AS base_accuracy_hi
    FROM summaries WHERE policy = 'base'
),
picked AS (
    SELECT checkpoint,
           any_value(gap_moved) FILTER (WHERE direction = 'forward') AS forward_js_gap_moved,
           any_value(gap_moved_lo) FILTER (WHERE direction = 'forward') AS forward_js_gap_moved_lo,
           any_value(gap_moved_hi) FILTER (WHERE direction = 'forward') AS forward_js_gap_moved_hi,
           any_value(gap_moved) FILTER (WHERE direction = 'reverse') AS reverse_js_gap_moved,
           any_value(gap_moved_lo) FILTER (WHERE direction = 'reverse') AS reverse_js_gap_moved_lo,
           any_value(gap_moved_hi) FILTER (WHERE direction = 'reverse') AS reverse_js_gap_moved_hi
    FROM cross_sampling_budget GROUP BY checkpoint
),
ordered AS (
    SELECT c.checkpoint, c.role, c.step, b.* EXCLUDE (checkpoint), rl.* EXCLUDE (checkpoint, problem_set, accuracy_replicates),
           p.* EXCLUDE (checkpoint),
           rl.accuracy_replicates, rl.problem_set,
           lag(rl.accuracy_replicates) OVER w AS previous_replicates, lag(rl.problem_set) OVER w AS previous_set,
           lag(rl.rl_accuracy) OVER w AS previous_accuracy
    FROM checkpoints c
    JOIN base b USING (checkpoint)
    JOIN rl USING (checkpoint)
    LEFT JOIN picked p USING (checkpoint)
    WHERE c.role <> 'base'
    WINDOW w AS (PARTITION BY c.role ORDER BY c.step NULLS LAST, c.checkpoint)
)
SELECT * EXCLUDE (accuracy_replicates, problem_set, previous_replicates, previous_set, previous_accuracy),
       (rl_accuracy - previous_accuracy)::DOUBLE AS rl_accuracy_change,
       CASE WHEN problem_set = previous_set
            THEN interval_low(paired_difference(accuracy_replicates, previous_replicates)) END AS rl_accuracy_change_lo,
       CASE WHEN problem_set = previous_set
            THEN interval_high(paired_difference(accuracy_replicates, previous_replicates)) END AS rl_accuracy_change_hi
FROM ordered
ORDER BY role, step NULLS LAST, checkpoint
