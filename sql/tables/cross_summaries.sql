-- The cross_summaries table: one row per (direction, criterion, eps) of one checkpoint's cross-sampling,
-- from its cross_samples and cross_scores, beside the accuracy of the base (base_scores) and of the RL
-- checkpoint (scores) sampling alone ($checkpoint: its key).
--   switched_share: share of all response tokens drawn from the intervening model (the budget);
--   switched_count: mean number per response; switched_share_per_response: mean of each response's own
--   share (higher when short responses switch much);
--   gap_moved: the share of the RL-minus-base accuracy gap the intervention moves: recovered for forward
--   (base primary), lost for reverse (RL primary); null when the gap is zero.
WITH alone AS (
    SELECT (SELECT avg(correct::INTEGER) FROM base_scores)::DOUBLE AS base_accuracy,
           (SELECT avg(correct::INTEGER) FROM scores)::DOUBLE AS rl_accuracy
),
rules AS (
    SELECT cs.direction, cs.criterion, cs.eps,
           count(*) AS n,
           avg(sc.correct::INTEGER)::DOUBLE AS accuracy,
           (sum(cs.n_switched) / greatest(sum(cs.n_tokens), 1))::DOUBLE AS switched_share,
           avg(cs.n_switched)::DOUBLE AS switched_count,
           avg(cs.n_switched / greatest(cs.n_tokens, 1))::DOUBLE AS switched_share_per_response,
           avg(cs.n_tokens)::DOUBLE AS mean_tokens,
           first(cs.switch_prob) AS switch_prob
    FROM cross_samples cs LEFT JOIN cross_scores sc USING (cross_sample_id)
    GROUP BY cs.direction, cs.criterion, cs.eps
)
SELECT $checkpoint AS checkpoint, r.*, a.base_accuracy, a.rl_accuracy,
       (CASE WHEN r.direction = 'forward' THEN r.accuracy - a.base_accuracy ELSE a.rl_accuracy - r.accuracy END)
           / nullif(a.rl_accuracy - a.base_accuracy, 0) AS gap_moved
FROM rules r CROSS JOIN alone a
ORDER BY r.direction, r.criterion, r.eps
