-- Reranking, not invention (finding 3): at high-JS tokens (JS > 0.1), where RL's top-1 sits in base's
-- ranking, and how much the two top-k sets overlap.
SELECT checkpoint, policy,
       count(*) AS n_high_js,
       avg((rl_top1_rank_in_base = 1)::INTEGER) AS rl_top1_is_base_top1,
       avg((rl_top1_rank_in_base <= 3)::INTEGER) AS rl_top1_in_base_top3,
       avg((rl_top1_rank_in_base <= 10)::INTEGER) AS rl_top1_in_base_top10,
       avg(overlap_top1) AS overlap_top1, avg(overlap_top2) AS overlap_top2, avg(overlap_top3) AS overlap_top3,
       avg(overlap_top5) AS overlap_top5, avg(overlap_top10) AS overlap_top10
FROM token_shifts
WHERE js > 0.1
GROUP BY ALL
ORDER BY checkpoint, policy;
