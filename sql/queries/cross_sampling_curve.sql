-- The cross-sampling curve: per checkpoint, direction, criterion and eps, the accuracy of the lockstep
-- responses against how many of their tokens came from the intervening model (switched_share: share of
-- all response tokens; switched_count: mean per response), beside the base and the RL checkpoint
-- sampling alone. Shares and accuracies in [0, 1].
WITH per_rule AS (
    SELECT cs.checkpoint, cs.direction, cs.criterion, cs.eps,
           sum(cs.n_switched) / greatest(sum(cs.n_tokens), 1) AS switched_share,
           avg(cs.n_switched) AS switched_count,
           avg(sc.correct::INTEGER) AS accuracy,
           count(*) AS n
    FROM cross_samples cs JOIN cross_scores sc USING (cross_sample_id)
    GROUP BY cs.checkpoint, cs.direction, cs.criterion, cs.eps
),
alone AS (
    SELECT checkpoint, avg(correct::INTEGER) AS accuracy FROM scores GROUP BY checkpoint
)
SELECT p.checkpoint, c.step, p.direction, p.criterion, p.eps, p.switched_share, p.switched_count,
       p.accuracy, p.n, b.accuracy AS base_accuracy, r.accuracy AS rl_accuracy
FROM per_rule p
LEFT JOIN checkpoints c ON c.checkpoint = p.checkpoint
LEFT JOIN alone b ON b.checkpoint = 'base'
LEFT JOIN alone r ON r.checkpoint = p.checkpoint
ORDER BY c.step NULLS LAST, p.checkpoint, p.direction, p.criterion, p.eps;
