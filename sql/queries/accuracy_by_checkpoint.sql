-- Accuracy of each policy: the base once, then every checkpoint (RL; SFT when analysed) by step (the summaries
-- table's), with its 95% bootstrap interval over problems.
SELECT * FROM (
    SELECT 'base' AS checkpoint, NULL::BIGINT AS step, 'base' AS role, 'base' AS policy,
           any_value(n_rollouts) AS n_rollouts, any_value(accuracy) AS accuracy,
           any_value(accuracy_lo) AS accuracy_lo, any_value(accuracy_hi) AS accuracy_hi
    FROM summaries WHERE policy = 'base'
    UNION ALL
    SELECT s.checkpoint, c.step, c.role, s.policy, s.n_rollouts, s.accuracy, s.accuracy_lo, s.accuracy_hi
    FROM summaries s LEFT JOIN checkpoints c USING (checkpoint)
    WHERE s.policy = 'rl'
)
ORDER BY role = 'base' DESC, role, step NULLS FIRST, checkpoint;
