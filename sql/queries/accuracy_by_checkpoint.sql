-- Accuracy of each policy: the base once, then every RL checkpoint by step.
SELECT s.checkpoint, c.step, c.role, s.policy, s.verifier,
       count(*) AS n_rollouts,
       avg(s.correct::INTEGER) AS accuracy
FROM scores s LEFT JOIN checkpoints c USING (checkpoint)
GROUP BY ALL
ORDER BY c.step NULLS FIRST, s.checkpoint;
