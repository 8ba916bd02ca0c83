-- Entropy against JS (figure 3): per checkpoint and policy, the share of tokens in each (base-entropy
-- bucket, JS bucket) cell. Low-entropy tokens stay put; the shifted ones sit where the base was unsure.
WITH cells AS (
    SELECT checkpoint, policy,
           CASE WHEN entropy_base < 0.01 THEN 0 WHEN entropy_base < 0.1 THEN 1 WHEN entropy_base < 0.5 THEN 2
                WHEN entropy_base < 1.0 THEN 3 ELSE 4 END AS entropy_bucket,
           CASE WHEN js < 1e-4 THEN 0 WHEN js < 1e-3 THEN 1 WHEN js < 1e-2 THEN 2 WHEN js < 0.1 THEN 3
                ELSE 4 END AS js_bucket
    FROM token_shifts
)
SELECT checkpoint, policy, entropy_bucket, js_bucket, count(*) AS n_tokens,
       count(*) / sum(count(*)) OVER (PARTITION BY checkpoint, policy) AS share_of_tokens
FROM cells
GROUP BY checkpoint, policy, entropy_bucket, js_bucket
ORDER BY checkpoint, policy, entropy_bucket, js_bucket;
