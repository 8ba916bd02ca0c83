-- Which tokens matter, in one line per checkpoint and direction: the js rule that moves the most of the
-- RL-minus-base accuracy gap while switching at most token_budget() of its response tokens, beside the
-- random control at that rule's budget. gap_moved: recovered (forward) or lost (reverse), as a fraction,
-- with its bootstrap interval over problems; js_minus_random: the paired difference (same resampled
-- problems for both rules, replicate by replicate) and its interval.
WITH js AS (
    SELECT *, row_number() OVER (PARTITION BY checkpoint, direction ORDER BY gap_moved DESC, eps DESC) AS pick
    FROM cross_summaries
    WHERE criterion = 'js' AND switched_share <= token_budget() AND isfinite(eps)
)
SELECT js.checkpoint, c.step, js.direction, js.eps, js.switched_share, js.accuracy,
       js.base_accuracy, js.rl_accuracy, js.gap_moved, js.gap_moved_lo, js.gap_moved_hi,
       rnd.switched_share AS random_switched_share, rnd.accuracy AS random_accuracy,
       rnd.gap_moved AS random_gap_moved, rnd.gap_moved_lo AS random_gap_moved_lo,
       rnd.gap_moved_hi AS random_gap_moved_hi,
       js.gap_moved - rnd.gap_moved AS js_minus_random,
       interval_low(paired_difference(js.gap_moved_replicates, rnd.gap_moved_replicates)) AS js_minus_random_lo,
       interval_high(paired_difference(js.gap_moved_replicates, rnd.gap_moved_replicates)) AS js_minus_random_hi
FROM js
LEFT JOIN cross_summaries rnd
       ON rnd.checkpoint = js.checkpoint AND rnd.direction = js.direction AND rnd.criterion = 'random'
      AND rnd.eps = js.eps
LEFT JOIN checkpoints c ON c.checkpoint = js.checkpoint
WHERE js.pick = 1
ORDER BY c.step NULLS LAST, js.checkpoint, js.direction;
