-- The demo's cross-sampling lines: per checkpoint and direction, the js rule of cross_sampling_budget (chosen
-- on the selection half of the problems, measured on the held-out half) against the random control at its
-- budget, each gap moved with its 95% bootstrap interval, and their paired difference; random_one_coin_seed:
-- the range of the control's gap moved over its coin seeds taken one at a time. The budget holds on
-- the selection half; on the held-out half the share switched may exceed it a little.
SELECT checkpoint, step, direction, eps,
       printf('%d / %d', chosen_on_problems, reported_on_problems) AS problems_chosen_on_reported_on,
       printf('%.1f%%', 100 * switched_share) AS tokens_switched,
       printf('%.2f [%.2f, %.2f]', gap_moved, gap_moved_lo, gap_moved_hi) AS js_gap_moved,
       printf('%.2f [%.2f, %.2f]', random_gap_moved, random_gap_moved_lo, random_gap_moved_hi) AS random_gap_moved,
       printf('%.2f to %.2f', random_gap_moved_coin_min, random_gap_moved_coin_max) AS random_one_coin_seed,
       printf('%.2f [%.2f, %.2f]', js_minus_random, js_minus_random_lo, js_minus_random_hi) AS js_minus_random
FROM cross_sampling_budget
ORDER BY step NULLS LAST, checkpoint, direction;
