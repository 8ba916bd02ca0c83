-- Token drill-down (figure 7): per checkpoint, the three responses sampled from the RL model that moved
-- most (largest total JS), every token of them in order; the 20 highest-JS positions of each response
-- have js_rank 1..20. Both models' probability of the token, and their top-5 alternatives (token ids
-- and probabilities, most likely first).
WITH picked AS (
    SELECT checkpoint, rollout_id,
           row_number() OVER (PARTITION BY checkpoint ORDER BY sum(js) DESC, rollout_id) AS response_rank
    FROM token_shifts
    WHERE policy = 'rl'
    GROUP BY checkpoint, rollout_id
)
SELECT t.checkpoint, p.response_rank, t.rollout_id, r.problem_id, s.correct,
       t.position, t.token_id, t.token_text, t.js,
       row_number() OVER (PARTITION BY t.checkpoint, t.rollout_id ORDER BY t.js DESC, t.position) AS js_rank,
       exp(t.logp_base) AS p_base, exp(t.logp_rl) AS p_rl,
       t.top5_ids_base, list_transform(t.top5_logp_base, lambda x: exp(x)) AS top5_p_base,
       t.top5_ids_rl, list_transform(t.top5_logp_rl, lambda x: exp(x)) AS top5_p_rl
FROM token_shifts t
JOIN picked p ON p.checkpoint = t.checkpoint AND p.rollout_id = t.rollout_id AND p.response_rank <= 3
LEFT JOIN rollouts r ON r.rollout_id = t.rollout_id
LEFT JOIN scores s ON s.rollout_id = t.rollout_id
ORDER BY t.checkpoint, p.response_rank, t.position;
