-- Entropy (finding 4): tokens bucketed by the base's entropy (nats), with their JS.
WITH bucketed AS (
    SELECT checkpoint, policy, js,
           CASE WHEN entropy_base < 0.01 THEN '0: [0, 0.01)'
                WHEN entropy_base < 0.1 THEN '1: [0.01, 0.1)'
                WHEN entropy_base < 0.5 THEN '2: [0.1, 0.5)'
                WHEN entropy_base < 1.0 THEN '3: [0.5, 1)'
                ELSE '4: [1, inf)' END AS entropy_bucket
    FROM token_shifts
)
SELECT checkpoint, policy, entropy_bucket,
       count(*) AS n_tokens,
       count(*) / sum(count(*)) OVER (PARTITION BY checkpoint, policy) AS share_of_tokens,
       avg(js) AS mean_js,
       avg((js < 1e-3)::INTEGER) AS share_js_lt_1e3,
       avg((js > 0.1)::INTEGER) AS share_js_gt_0_1
FROM bucketed
GROUP BY checkpoint, policy, entropy_bucket
ORDER BY checkpoint, policy, entropy_bucket;
