-- The cross-sampling curve: per checkpoint, direction, criterion and eps, the accuracy of the lockstep
-- responses against how many of their tokens came from the intervening model (switched_share: share of
-- all response tokens; switched_count: mean per response), beside the base and the RL checkpoint
-- sampling alone (the cross_summaries table). Shares and accuracies in [0, 1]; accuracy_lo/hi: its 95%
-- bootstrap interval over problems.
SELECT x.checkpoint, c.step, x.direction, x.criterion, x.eps, x.switched_share, x.switched_count,
       x.accuracy, x.accuracy_lo, x.accuracy_hi, x.n, x.base_accuracy, x.rl_accuracy
FROM cross_summaries x LEFT JOIN checkpoints c USING (checkpoint)
ORDER BY c.step NULLS LAST, x.checkpoint, x.direction, x.criterion, x.eps;
