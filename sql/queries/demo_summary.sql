-- One line per checkpoint (RL; an SFT run's too, when analysed): accuracy beside the base's, each with its 95%
-- bootstrap interval over problems, and how sparse the shift is along the checkpoint's own samples.
SELECT r.checkpoint, c.role, c.step,
       printf('%.3f [%.3f, %.3f]', b.accuracy, b.accuracy_lo, b.accuracy_hi) AS base_accuracy,
       printf('%.3f [%.3f, %.3f]', r.accuracy, r.accuracy_lo, r.accuracy_hi) AS rl_accuracy,
       r.n_problems, r.share_js_lt_1e3, r.js_p50, r.js_p90, r.js_p99,
       r.high_js_rl_top1_in_base_top3
FROM summaries r
JOIN summaries b ON b.checkpoint = r.checkpoint AND b.policy = 'base'
LEFT JOIN checkpoints c ON c.checkpoint = r.checkpoint
WHERE r.policy = 'rl'
ORDER BY c.role, c.step NULLS LAST, r.checkpoint;
