-- Entropy against JS (figure 3): per checkpoint and policy, the share of tokens in each (base-entropy
-- bucket, JS bucket) cell (sql/macros.sql). Low-entropy tokens stay put; the shifted ones sit where the
-- base was unsure.
WITH cells AS (
    SELECT checkpoint, policy, entropy_bucket(entropy_base) AS entropy_bucket, js_bucket(js) AS js_bucket
    FROM token_shifts
)
SELECT checkpoint, policy, entropy_bucket, js_bucket, count(*) AS n_tokens,
       count(*) / sum(count(*)) OVER (PARTITION BY checkpoint, policy) AS share_of_tokens
FROM cells
GROUP BY checkpoint, policy, entropy_bucket, js_bucket
ORDER BY checkpoint, policy, entropy_bucket, js_bucket;
