-- Which tokens matter, in one line per checkpoint and direction: the js rule that moves the most of the
-- RL-minus-base accuracy gap while switching at most token_budget() of its response tokens, beside the
-- random control at that rule's budget. The rule is chosen on the selection half of the problems and
-- reported on the held-out half (cross_summaries' *_select and *_report columns; problem_half in
-- sql/macros.sql), so its gap_moved is not inflated by the choice. gap_moved: recovered (forward) or lost
-- (reverse), as a fraction, with its bootstrap interval over the held-out problems; js_minus_random: the
-- paired difference (the same resampled problems for both rules, replicate by replicate) and its interval.
-- gap_moved_in_sample: the chosen rule on every problem, choice included (biased upwards; for reference).
-- share_switched_at_least_once, median_first_switch_position: how many responses a rule switches at all, and
-- where it switches first (every problem; a js rule that always switches the first token shows 1 and 0).
-- The random control pools its coin seeds; random_gap_moved_coin_min/max: the least and most that one coin
-- seed alone moves on the held-out half (random_coin_seeds of them), its spread from the coins alone.
WITH js AS (
    SELECT *, row_number() OVER (PARTITION BY checkpoint, direction
                                 ORDER BY gap_moved_select DESC NULLS LAST, eps DESC) AS pick
    FROM cross_summaries
    WHERE criterion = 'js' AND switched_share_select <= token_budget() AND isfinite(eps)
)
SELECT js.checkpoint, c.step, js.direction, js.eps,
       js.n_problems_select AS chosen_on_problems, js.n_problems_report AS reported_on_problems,
       js.switched_share_report AS switched_share, js.accuracy_report AS accuracy,
       js.gap_moved_report AS gap_moved, js.gap_moved_report_lo AS gap_moved_lo, js.gap_moved_report_hi AS gap_moved_hi,
       rnd.switched_share_report AS random_switched_share, rnd.accuracy_report AS random_accuracy,
       rnd.gap_moved_report AS random_gap_moved, rnd.gap_moved_report_lo AS random_gap_moved_lo,
       rnd.gap_moved_report_hi AS random_gap_moved_hi,
       js.gap_moved_report - rnd.gap_moved_report AS js_minus_random,
       interval_low(paired_difference(js.gap_moved_report_replicates, rnd.gap_moved_report_replicates))
           AS js_minus_random_lo,
       interval_high(paired_difference(js.gap_moved_report_replicates, rnd.gap_moved_report_replicates))
           AS js_minus_random_hi,
       js.gap_moved AS gap_moved_in_sample,
       js.share_switched_at_least_once, js.median_first_switch_position,
       rnd.share_switched_at_least_once AS random_share_switched_at_least_once,
       rnd.median_first_switch_position AS random_median_first_switch_position,
       rnd.coin_seeds AS random_coin_seeds, list_min(rnd.gap_moved_report_by_coin) AS random_gap_moved_coin_min,
       list_max(rnd.gap_moved_report_by_coin) AS random_gap_moved_coin_max
FROM js
LEFT JOIN cross_summaries rnd
       ON rnd.checkpoint = js.checkpoint AND rnd.direction = js.direction AND rnd.criterion = 'random'
      AND rnd.eps = js.eps
LEFT JOIN checkpoints c ON c.checkpoint = js.checkpoint
WHERE js.pick = 1
ORDER BY c.step NULLS LAST, js.checkpoint, js.direction;
