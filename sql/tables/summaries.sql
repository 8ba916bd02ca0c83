-- The summaries table: one row per (checkpoint, policy) of one checkpoint, from its token_shifts and the
-- scores of both policies' rollouts ($checkpoint: its key). The figures and queries read these columns;
-- none of them is computed anywhere else. The top-5%-JS cut is taken per policy. An empty position bin or
-- entropy bucket has no mean JS (null); its token count says so. Accuracy carries its bootstrap interval
-- over problems (accuracy_lo, accuracy_hi) and its replicates, for paired differences downstream.
WITH tokens AS (
    SELECT *, position_bin(rel_position) AS bin, entropy_bucket(entropy_base) AS bucket FROM token_shifts
),
stats AS (
    SELECT policy,
           count(*) AS n_tokens,
           count(DISTINCT rollout_id) AS n_rollouts_with_tokens,
           quantile_cont(js, js_curve_quantiles()) AS js_curve,
           quantile_disc(js, 1 - top_share()) AS js_top5pct_cut,
           avg(js) AS js_mean,
           avg((js < near_zero_js())::INTEGER) AS share_js_lt_1e3,
           avg((js < small_js())::INTEGER) AS share_js_lt_1e2,
           avg((js > high_js())::INTEGER) AS share_js_gt_0_1,
           count(*) FILTER (WHERE js > high_js()) AS n_high_js,
           [avg(overlap_top1) FILTER (WHERE js > high_js()), avg(overlap_top2) FILTER (WHERE js > high_js()),
            avg(overlap_top3) FILTER (WHERE js > high_js()), avg(overlap_top4) FILTER (WHERE js > high_js()),
            avg(overlap_top5) FILTER (WHERE js > high_js()), avg(overlap_top6) FILTER (WHERE js > high_js()),
            avg(overlap_top7) FILTER (WHERE js > high_js()), avg(overlap_top8) FILTER (WHERE js > high_js()),
            avg(overlap_top9) FILTER (WHERE js > high_js()), avg(overlap_top10) FILTER (WHERE js > high_js())]
               AS high_js_topk_overlap
    FROM tokens GROUP BY policy
),
position_cells AS (
    SELECT s.policy, b.bin,
           count(t.js) AS n, avg(t.js) AS mean_js,
           count(*) FILTER (WHERE t.js >= s.js_top5pct_cut) AS n_top
    FROM stats s CROSS JOIN range(position_bins()) b(bin)
    LEFT JOIN tokens t ON t.policy = s.policy AND t.bin = b.bin
    GROUP BY s.policy, b.bin
),
position AS (
    SELECT policy,
           list(n ORDER BY bin) AS position_n_tokens,
           list(mean_js::FLOAT ORDER BY bin) AS position_mean_js,
           list((n_top / greatest(total_top, 1))::FLOAT ORDER BY bin) AS position_top5pct_share
    FROM (SELECT *, sum(n_top) OVER (PARTITION BY policy) AS total_top FROM position_cells)
    GROUP BY policy
),
rank_cells AS (
    SELECT s.policy, b.bucket, count(t.js) AS n, any_value(s.n_high_js) AS n_high_js
    FROM stats s CROSS JOIN range(len(rank_bucket_labels())) b(bucket)
    LEFT JOIN tokens t ON t.policy = s.policy AND t.js > high_js() AND rank_bucket(t.rl_top1_rank_in_base) = b.bucket
    GROUP BY s.policy, b.bucket
),
ranks AS (  -- shares of the high-JS tokens; null where a policy has none
    SELECT policy, list((n / nullif(n_high_js, 0))::FLOAT ORDER BY bucket) AS high_js_rank_share
    FROM rank_cells GROUP BY policy
),
entropy_cells AS (
    SELECT s.policy, b.bucket, count(t.js) AS n, avg(t.js) AS mean_js,
           avg((t.js < near_zero_js())::INTEGER) AS low, avg((t.js > high_js())::INTEGER) AS high
    FROM stats s CROSS JOIN range(len(entropy_bucket_labels())) b(bucket)
    LEFT JOIN tokens t ON t.policy = s.policy AND t.bucket = b.bucket
    GROUP BY s.policy, b.bucket
),
entropy AS (
    SELECT policy,
           list((n / greatest(total, 1))::FLOAT ORDER BY bucket) AS entropy_bucket_share,
           list(n ORDER BY bucket) AS entropy_bucket_n_tokens,
           list(mean_js::FLOAT ORDER BY bucket) AS entropy_bucket_mean_js,
           list(low::FLOAT ORDER BY bucket) AS entropy_bucket_share_js_lt_1e3,
           list(high::FLOAT ORDER BY bucket) AS entropy_bucket_share_js_gt_0_1
    FROM (SELECT *, sum(n) OVER (PARTITION BY policy) AS total FROM entropy_cells)
    GROUP BY policy
),
problem_index AS (  -- the problem set, indexed for the bootstrap (sql/macros.sql)
    SELECT dataset, problem_id, (row_number() OVER (ORDER BY dataset, problem_id) - 1)::INTEGER AS p,
           count(*) OVER () AS n_problems,
           md5(string_agg(dataset || '/' || problem_id, chr(10)) OVER (ORDER BY dataset, problem_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) AS problem_set
    FROM (SELECT DISTINCT dataset, problem_id FROM scores)
),
per_problem AS (
    SELECT s.policy, i.p, sum(s.correct::INTEGER) AS k, count(*) AS n
    FROM scores s JOIN problem_index i USING (dataset, problem_id)
    GROUP BY s.policy, i.p
),
replicates AS (
    SELECT pp.policy, d.b, sum(pp.k) / sum(pp.n) AS accuracy
    FROM (SELECT r.b, bootstrap_pick(r.b, i.p, i.n_problems) AS p
          FROM range(bootstrap_resamples()) r(b) CROSS JOIN problem_index i) d
    JOIN per_problem pp USING (p)
    GROUP BY pp.policy, d.b
),
accuracy AS (
    SELECT s.policy, count(*) AS n_rollouts, avg(s.correct::INTEGER) AS accuracy,
           (SELECT list(r.accuracy::FLOAT ORDER BY r.b) FROM replicates r WHERE r.policy = s.policy)
               AS accuracy_replicates
    FROM scores s GROUP BY s.policy
)
SELECT $checkpoint AS checkpoint, a.policy, a.n_rollouts, a.accuracy::FLOAT AS accuracy,
       interval_low(a.accuracy_replicates)::FLOAT AS accuracy_lo,
       interval_high(a.accuracy_replicates)::FLOAT AS accuracy_hi,
       coalesce(s.n_tokens, 0) AS n_tokens, coalesce(s.n_rollouts_with_tokens, 0) AS n_rollouts_with_tokens,
       s.js_curve[7]::FLOAT AS js_p50, s.js_curve[10]::FLOAT AS js_p80, s.js_curve[11]::FLOAT AS js_p90,
       s.js_curve[12]::FLOAT AS js_p95, s.js_curve[14]::FLOAT AS js_p99,
       s.js_mean::FLOAT AS js_mean, s.share_js_lt_1e3::FLOAT AS share_js_lt_1e3,
       s.share_js_lt_1e2::FLOAT AS share_js_lt_1e2, s.share_js_gt_0_1::FLOAT AS share_js_gt_0_1,
       coalesce(s.n_high_js, 0) AS n_high_js,
       r.high_js_rank_share[1] AS high_js_rl_top1_in_base_top1,
       (r.high_js_rank_share[1] + r.high_js_rank_share[2] + r.high_js_rank_share[3])::FLOAT
           AS high_js_rl_top1_in_base_top3,
       s.js_top5pct_cut::FLOAT AS js_top5pct_cut,
       [v::FLOAT FOR v IN s.js_curve] AS js_curve,
       r.high_js_rank_share,
       [v::FLOAT FOR v IN s.high_js_topk_overlap] AS high_js_topk_overlap,
       p.position_n_tokens, p.position_mean_js, p.position_top5pct_share,
       e.entropy_bucket_n_tokens, e.entropy_bucket_share, e.entropy_bucket_mean_js, e.entropy_bucket_share_js_lt_1e3,
       e.entropy_bucket_share_js_gt_0_1,
       (SELECT any_value(n_problems) FROM problem_index) AS n_problems,
       (SELECT any_value(problem_set) FROM problem_index) AS problem_set,
       'problem' AS bootstrap_unit, bootstrap_resamples() AS bootstrap_resamples, bootstrap_seed() AS bootstrap_seed,
       a.accuracy_replicates
FROM accuracy a
LEFT JOIN stats s USING (policy)
LEFT JOIN ranks r USING (policy)
LEFT JOIN position p USING (policy)
LEFT JOIN entropy e USING (policy)
ORDER BY a.policy
