-- Which tokens matter, in one line per checkpoint and direction: the js rule that moves the most of the
-- RL-minus-base accuracy gap while switching at most 10% of its response tokens (token_budget()), beside the
-- random control at that rule's budget. gap_moved: recovered (forward) or lost (reverse), as a fraction.
WITH js AS (
    SELECT *, row_number() OVER (PARTITION BY checkpoint, direction ORDER BY gap_moved DESC, eps DESC) AS pick
    FROM cross_summaries
    WHERE criterion = 'js' AND switched_share <= token_budget() AND isfinite(eps)
)
SELECT js.checkpoint, c.step, js.direction, js.eps, js.switched_share, js.accuracy,
       js.base_accuracy, js.rl_accuracy, js.gap_moved,
       rnd.switched_share AS random_switched_share, rnd.accuracy AS random_accuracy, rnd.gap_moved AS random_gap_moved
FROM js
LEFT JOIN cross_summaries rnd
       ON rnd.checkpoint = js.checkpoint AND rnd.direction = js.direction AND rnd.criterion = 'random'
      AND rnd.eps = js.eps
LEFT JOIN checkpoints c ON c.checkpoint = js.checkpoint
WHERE js.pick = 1
ORDER BY c.step NULLS LAST, js.checkpoint, js.direction;
