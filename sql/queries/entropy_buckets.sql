-- Entropy (finding 4): tokens bucketed by the base's entropy (nats), with their JS (the summaries
-- table's entropy_bucket_* lists).
SELECT s.checkpoint, s.policy, b.bucket || ': ' || entropy_bucket_labels()[b.bucket + 1] AS entropy_bucket,
       s.entropy_bucket_n_tokens[b.bucket + 1] AS n_tokens,
       s.entropy_bucket_share[b.bucket + 1] AS share_of_tokens,
       s.entropy_bucket_mean_js[b.bucket + 1] AS mean_js,
       s.entropy_bucket_share_js_lt_1e3[b.bucket + 1] AS share_js_lt_1e3,
       s.entropy_bucket_share_js_gt_0_1[b.bucket + 1] AS share_js_gt_0_1
FROM summaries s CROSS JOIN range(len(entropy_bucket_labels())) b(bucket)
ORDER BY s.checkpoint, s.policy, b.bucket;
