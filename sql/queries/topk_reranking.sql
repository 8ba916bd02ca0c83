-- Reranking, not invention (finding 3): at high-JS tokens (JS > high_js()), where RL's top-1 sits in
-- base's ranking (shares in the buckets 1, 2, 3, 4-10, >10; they sum to 1), and how much the two top-k
-- sets overlap for k = 1..10 (the summaries table's high_js_* lists).
SELECT checkpoint, policy, n_high_js,
       high_js_rank_share[1] AS rank_1, high_js_rank_share[2] AS rank_2, high_js_rank_share[3] AS rank_3,
       high_js_rank_share[4] AS rank_4_10, high_js_rank_share[5] AS rank_gt_10,
       high_js_topk_overlap[1] AS overlap_top1, high_js_topk_overlap[2] AS overlap_top2,
       high_js_topk_overlap[3] AS overlap_top3, high_js_topk_overlap[4] AS overlap_top4,
       high_js_topk_overlap[5] AS overlap_top5, high_js_topk_overlap[6] AS overlap_top6,
       high_js_topk_overlap[7] AS overlap_top7, high_js_topk_overlap[8] AS overlap_top8,
       high_js_topk_overlap[9] AS overlap_top9, high_js_topk_overlap[10] AS overlap_top10
FROM summaries
WHERE n_high_js > 0
ORDER BY checkpoint, policy;
