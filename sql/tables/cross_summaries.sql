-- The cross_summaries table: one row per (direction, criterion, eps) of one checkpoint's cross-sampling,
-- from its cross_samples and cross_scores, beside the accuracy of the base (base_scores) and of the RL
-- checkpoint (scores) sampling alone ($checkpoint: its key).
--   switched_share: share of all response tokens drawn from the intervening model (the budget);
--   switched_count: mean number per response; switched_share_per_response: mean of each response's own
--   share (higher when short responses switch much);
--   gap_moved: the share of the RL-minus-base accuracy gap the intervention moves: recovered for forward
--   (base primary), lost for reverse (RL primary); null when the gap is zero.
-- accuracy, gap_moved and switched_share carry bootstrap intervals over problems (sql/macros.sql): in each
-- replicate the rule, the base and the RL checkpoint are scored on the same resampled problems; the
-- replicates of accuracy and gap_moved are kept for paired differences (js against random).
WITH problem_index AS (
    SELECT dataset, problem_id, (row_number() OVER (ORDER BY dataset, problem_id) - 1)::INTEGER AS p,
           count(*) OVER () AS n_problems
    FROM (SELECT dataset, problem_id FROM base_scores UNION SELECT dataset, problem_id FROM scores)
),
draws AS (
    SELECT r.b, bootstrap_pick(r.b, i.p, i.n_problems) AS p
    FROM range(bootstrap_resamples()) r(b) CROSS JOIN problem_index i
),
alone_per_problem AS (
    SELECT i.p, sum(b.correct::INTEGER) AS k, count(*) AS n, 'base' AS policy
    FROM base_scores b JOIN problem_index i USING (dataset, problem_id) GROUP BY i.p
    UNION ALL
    SELECT i.p, sum(s.correct::INTEGER), count(*), 'rl'
    FROM scores s JOIN problem_index i USING (dataset, problem_id) GROUP BY i.p
),
alone_replicates AS (
    SELECT d.b, sum(a.k) FILTER (WHERE a.policy = 'base') / sum(a.n) FILTER (WHERE a.policy = 'base') AS base_accuracy,
           sum(a.k) FILTER (WHERE a.policy = 'rl') / sum(a.n) FILTER (WHERE a.policy = 'rl') AS rl_accuracy
    FROM draws d JOIN alone_per_problem a USING (p) GROUP BY d.b
),
samples AS (
    SELECT cs.*, sc.correct, i.p
    FROM cross_samples cs
    LEFT JOIN cross_scores sc ON sc.cross_sample_id = cs.cross_sample_id
    JOIN problem_index i ON i.dataset = cs.dataset AND i.problem_id = cs.problem_id
),
rule_per_problem AS (
    SELECT direction, criterion, eps, p, sum(correct::INTEGER) AS k, count(*) AS n,
           sum(n_switched) AS switched, sum(n_tokens) AS tokens
    FROM samples GROUP BY direction, criterion, eps, p
),
rule_replicates AS (
    SELECT r.direction, r.criterion, r.eps, d.b,
           sum(r.k) / sum(r.n) AS accuracy, sum(r.switched) / greatest(sum(r.tokens), 1) AS switched_share
    FROM draws d JOIN rule_per_problem r USING (p)
    GROUP BY r.direction, r.criterion, r.eps, d.b
),
moved_replicates AS (
    SELECT r.direction, r.criterion, r.eps,
           list(r.accuracy::FLOAT ORDER BY r.b) AS accuracy_replicates,
           list(((CASE WHEN r.direction = 'forward' THEN r.accuracy - a.base_accuracy ELSE a.rl_accuracy - r.accuracy END)
                 / nullif(a.rl_accuracy - a.base_accuracy, 0))::FLOAT ORDER BY r.b) AS gap_moved_replicates,
           list(r.switched_share::FLOAT ORDER BY r.b) AS switched_share_replicates
    FROM rule_replicates r JOIN alone_replicates a USING (b)
    GROUP BY r.direction, r.criterion, r.eps
),
alone AS (
    SELECT (SELECT avg(correct::INTEGER) FROM base_scores)::DOUBLE AS base_accuracy,
           (SELECT avg(correct::INTEGER) FROM scores)::DOUBLE AS rl_accuracy
),
rules AS (
    SELECT direction, criterion, eps,
           count(*) AS n,
           avg(correct::INTEGER)::DOUBLE AS accuracy,
           (sum(n_switched) / greatest(sum(n_tokens), 1))::DOUBLE AS switched_share,
           avg(n_switched)::DOUBLE AS switched_count,
           avg(n_switched / greatest(n_tokens, 1))::DOUBLE AS switched_share_per_response,
           avg(n_tokens)::DOUBLE AS mean_tokens,
           first(switch_prob) AS switch_prob
    FROM samples
    GROUP BY direction, criterion, eps
)
SELECT $checkpoint AS checkpoint, r.*, a.base_accuracy, a.rl_accuracy,
       (CASE WHEN r.direction = 'forward' THEN r.accuracy - a.base_accuracy ELSE a.rl_accuracy - r.accuracy END)
           / nullif(a.rl_accuracy - a.base_accuracy, 0) AS gap_moved,
       interval_low(m.accuracy_replicates) AS accuracy_lo, interval_high(m.accuracy_replicates) AS accuracy_hi,
       interval_low(m.gap_moved_replicates) AS gap_moved_lo, interval_high(m.gap_moved_replicates) AS gap_moved_hi,
       interval_low(m.switched_share_replicates) AS switched_share_lo,
       interval_high(m.switched_share_replicates) AS switched_share_hi,
       (SELECT any_value(n_problems) FROM problem_index) AS n_problems,
       'problem' AS bootstrap_unit, bootstrap_resamples() AS bootstrap_resamples, bootstrap_seed() AS bootstrap_seed,
       m.accuracy_replicates, m.gap_moved_replicates
FROM rules r
CROSS JOIN alone a
LEFT JOIN moved_replicates m USING (direction, criterion, eps)
ORDER BY r.direction, r.criterion, r.eps
