-- Reranking, not invention (finding 3): at high-JS tokens (JS > 0.1), where RL's top-1 sits in base's
-- ranking (shares in the buckets 1, 2, 3, 4-10, >10; they sum to 1), and how much the two top-k sets
-- overlap for k = 1..10.
SELECT checkpoint, policy,
       count(*) AS n_high_js,
       avg((rl_top1_rank_in_base = 1)::INTEGER) AS rank_1,
       avg((rl_top1_rank_in_base = 2)::INTEGER) AS rank_2,
       avg((rl_top1_rank_in_base = 3)::INTEGER) AS rank_3,
       avg((rl_top1_rank_in_base BETWEEN 4 AND 10)::INTEGER) AS rank_4_10,
       avg((rl_top1_rank_in_base > 10)::INTEGER) AS rank_gt_10,
       avg(overlap_top1) AS overlap_top1, avg(overlap_top2) AS overlap_top2, avg(overlap_top3) AS overlap_top3,
       avg(overlap_top4) AS overlap_top4, avg(overlap_top5) AS overlap_top5, avg(overlap_top6) AS overlap_top6,
       avg(overlap_top7) AS overlap_top7, avg(overlap_top8) AS overlap_top8, avg(overlap_top9) AS overlap_top9,
       avg(overlap_top10) AS overlap_top10
FROM token_shifts
WHERE js > 0.1
GROUP BY ALL
ORDER BY checkpoint, policy;
