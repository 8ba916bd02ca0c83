-- The paper's findings 1-6 (Meng et al., arXiv 2603.22446) as numbers, one line per RL checkpoint and
-- measure, each with its 95% bootstrap interval over problems (the draws of sql/macros.sql, so checkpoints
-- are paired) where it has one. An SFT run's checkpoints (role sft) get the same lines, "RL" read as "SFT";
-- growth (6) is against the first checkpoint of the same role.
-- Token measures are along the RL policy's own samples (token_shifts, policy 'rl'); shares of tokens are
-- ratios of sums over the resampled problems. The top-5%-JS cut is the checkpoint's (summaries), held fixed
-- in the resamples. What each finding claims, and what would contradict it:
--   0 accuracy       RL above the base (the study needs a gap to explain)
--   1 sparsity       most tokens barely move: share with JS < near_zero_js() high (paper: > 0.83)
--   2 position       top-5%-JS tokens crowd the start: first token, first tenth (uniform: 0.10), last tenth
--   3 reranking      at JS > high_js(), RL's top-1 is in the base's top 3 (paper: > 0.8)
--   4 entropy        near-zero-JS tokens mostly low base entropy (< low_entropy()); high-JS ones span both
--   5 cross-sampling js switching moves most of the gap at <= token_budget() of tokens, random far less
--                    (cross_sampling_budget: chosen on one half of the problems, reported on the other)
--   6 evolution      divergence grows with training: share of JS > high_js() and its change since the first
--                    checkpoint (paired; no interval where the two checkpoints' problem sets differ), JS p99
WITH rl_tokens AS (
    SELECT t.checkpoint, r.dataset, r.problem_id, t.js, t.position, position_bin(t.rel_position) AS bin,
           t.entropy_base, t.rl_top1_rank_in_base, s.js_top5pct_cut
    FROM token_shifts t
    JOIN rollouts r ON r.rollout_id = t.rollout_id AND r.checkpoint = t.checkpoint
    JOIN summaries s ON s.checkpoint = t.checkpoint AND s.policy = t.policy
    WHERE t.policy = 'rl'
),
problem_index AS (  -- each checkpoint's problem set, indexed as summaries indexes it
    SELECT checkpoint, dataset, problem_id,
           (row_number() OVER (PARTITION BY checkpoint ORDER BY dataset, problem_id) - 1)::INTEGER AS p,
           count(*) OVER (PARTITION BY checkpoint) AS n_problems
    FROM (SELECT DISTINCT checkpoint, dataset, problem_id FROM scores WHERE policy = 'rl')
),
per_problem AS (  -- numerator and denominator of every token share, per problem
    SELECT i.checkpoint, i.p, m.finding, m.ord, m.measure, m.num, m.den
    FROM problem_index i
    LEFT JOIN (
        SELECT checkpoint, dataset, problem_id,
               count(*) FILTER (WHERE js < near_zero_js()) AS near_zero,
               count(*) AS tokens,
               count(*) FILTER (WHERE js >= js_top5pct_cut) AS top,
               count(*) FILTER (WHERE js >= js_top5pct_cut AND position = 0) AS top_first_token,
               count(*) FILTER (WHERE js >= js_top5pct_cut AND bin = 0) AS top_first_tenth,
               count(*) FILTER (WHERE js >= js_top5pct_cut AND bin = position_bins() - 1) AS top_last_tenth,
               count(*) FILTER (WHERE js > high_js()) AS high,
               count(*) FILTER (WHERE js > high_js() AND rl_top1_rank_in_base <= 3) AS high_reranked,
               count(*) FILTER (WHERE js > high_js() AND entropy_base < low_entropy()) AS high_low_entropy,
               count(*) FILTER (WHERE js < near_zero_js() AND entropy_base < low_entropy()) AS near_zero_low_entropy
        FROM rl_tokens GROUP BY checkpoint, dataset, problem_id
    ) c USING (checkpoint, dataset, problem_id)
    CROSS JOIN LATERAL (VALUES
        (1, 1, printf('share of tokens with JS < %g', near_zero_js()), c.near_zero, c.tokens),
        (2, 1, printf('top-%g%%-JS tokens at the first token', 100 * top_share()), c.top_first_token, c.top),
        (2, 2, printf('top-%g%%-JS tokens in the first tenth', 100 * top_share()), c.top_first_tenth, c.top),
        (2, 3, printf('top-%g%%-JS tokens in the last tenth', 100 * top_share()), c.top_last_tenth, c.top),
        (3, 1, printf('JS > %g: RL top-1 in base top-3', high_js()), c.high_reranked, c.high),
        (4, 1, printf('JS < %g: base entropy < %g', near_zero_js(), low_entropy()), c.near_zero_low_entropy,
         c.near_zero),
        (4, 2, printf('JS > %g: base entropy < %g', high_js(), low_entropy()), c.high_low_entropy, c.high),
        (6, 1, printf('share of tokens with JS > %g', high_js()), c.high, c.tokens)
    ) m(finding, ord, measure, num, den)
),
token_measures AS (
    SELECT checkpoint, finding, ord, measure,
           sum(num) / nullif(sum(den), 0) AS value,
           (SELECT list(r ORDER BY b) FROM (
                SELECT d.b, sum(q.num) / nullif(sum(q.den), 0) AS r
                FROM (SELECT x.b, bootstrap_pick(x.b, i.p, i.n_problems) AS p
                      FROM range(bootstrap_resamples()) x(b)
                      CROSS JOIN problem_index i WHERE i.checkpoint = pp.checkpoint) d
                JOIN per_problem q ON q.checkpoint = pp.checkpoint AND q.finding = pp.finding
                                  AND q.measure = pp.measure AND q.p = d.p
                GROUP BY d.b)) AS replicates
    FROM per_problem pp GROUP BY checkpoint, finding, ord, measure
),
steps AS (
    SELECT s.checkpoint, c.role, c.step, row_number() OVER (PARTITION BY c.role ORDER BY c.step NULLS LAST, s.checkpoint) AS k
    FROM (SELECT DISTINCT checkpoint FROM summaries) s LEFT JOIN checkpoints c USING (checkpoint)
),
growth AS (  -- finding 6: the share of JS > high_js() against the first checkpoint, replicate by replicate
    SELECT t.checkpoint, 6 AS finding, 2 AS ord,
           printf('change of share with JS > %g since the first checkpoint', high_js()) AS measure,
           t.value - f.value AS value,
           CASE WHEN ts.problem_set = fss.problem_set  -- paired only on the same problems
                THEN paired_difference(t.replicates, f.replicates) END AS replicates
    FROM token_measures t JOIN steps s USING (checkpoint)
    JOIN token_measures f ON f.finding = t.finding AND f.measure = t.measure
    JOIN steps fs ON fs.checkpoint = f.checkpoint AND fs.k = 1 AND fs.role IS NOT DISTINCT FROM s.role
    JOIN summaries ts ON ts.checkpoint = t.checkpoint AND ts.policy = 'rl'
    JOIN summaries fss ON fss.checkpoint = f.checkpoint AND fss.policy = 'rl'
    WHERE t.finding = 6 AND t.ord = 1 AND s.k > 1
),
lines AS (
    SELECT checkpoint, finding, ord, measure, value,
           interval_low(replicates) AS lo, interval_high(replicates) AS hi
    FROM (SELECT * FROM token_measures UNION ALL SELECT * FROM growth)
    UNION ALL
    SELECT r.checkpoint, 0, 1, 'base accuracy', b.accuracy, b.accuracy_lo, b.accuracy_hi
    FROM summaries r JOIN summaries b ON b.checkpoint = r.checkpoint AND b.policy = 'base' WHERE r.policy = 'rl'
    UNION ALL
    SELECT checkpoint, 0, 2, upper(coalesce(c.role, 'rl')) || ' accuracy', accuracy, accuracy_lo, accuracy_hi
    FROM summaries LEFT JOIN checkpoints c USING (checkpoint) WHERE policy = 'rl'
    UNION ALL
    SELECT checkpoint, 6, 3, 'JS p99', js_p99, NULL, NULL FROM summaries WHERE policy = 'rl'
    UNION ALL
    SELECT b.checkpoint, 5, 10 * (b.direction = 'reverse')::INTEGER + m.ord, b.direction || ': ' || m.measure,
           m.value, m.lo, m.hi
    FROM cross_sampling_budget b CROSS JOIN LATERAL (VALUES
        (1, printf('share of tokens switched (js rule, eps %g)', b.eps), b.switched_share, NULL, NULL),
        (2, 'gap moved by js', b.gap_moved, b.gap_moved_lo, b.gap_moved_hi),
        (3, 'gap moved by random', b.random_gap_moved, b.random_gap_moved_lo, b.random_gap_moved_hi),
        (4, 'js minus random', b.js_minus_random, b.js_minus_random_lo, b.js_minus_random_hi)
    ) m(ord, measure, value, lo, hi)
)
SELECT l.checkpoint, s.step, l.finding, l.measure, l.value::DOUBLE AS value, l.lo::DOUBLE AS lo,
       l.hi::DOUBLE AS hi
FROM lines l JOIN steps s USING (checkpoint)
ORDER BY s.role NULLS FIRST, s.k, l.finding, l.ord;
