-- One line per RL checkpoint: accuracy beside the base's, and how sparse the shift is along RL samples.
SELECT r.checkpoint, c.step,
       b.accuracy AS base_accuracy, r.accuracy AS rl_accuracy,
       r.share_js_lt_1e3, r.js_p50, r.js_p90, r.js_p99,
       r.high_js_rl_top1_in_base_top3
FROM summaries r
JOIN summaries b ON b.checkpoint = r.checkpoint AND b.policy = 'base'
LEFT JOIN checkpoints c ON c.checkpoint = r.checkpoint
WHERE r.policy = 'rl'
ORDER BY c.step NULLS LAST, r.checkpoint;
