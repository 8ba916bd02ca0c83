-- The cross_summaries table: one row per (direction, criterion, eps) of one checkpoint's cross-sampling,
-- from its cross_samples and cross_scores, beside the accuracy of the base (base_scores) and of the RL
-- checkpoint (scores) sampling alone ($checkpoint: its key).
--   switched_share: share of all response tokens drawn from the intervening model (the budget);
--   switched_count: mean number per response; switched_share_per_response: mean of each response's own
--   share (higher when short responses switch much); share_switched_at_least_once: the share of responses
--   with a switch at all, and mean/median_first_switch_position where the first one happens (a switch
--   changes what follows, so later switches are partly follow-ons of the first);
--   gap_moved: the share of the RL-minus-base accuracy gap the rule moves (sql/macros.sql, gap_moved).
-- Scopes: the columns without a suffix are over every problem; *_select over the selection half of the
-- problems and *_report over the held-out half (problem_half): rules are chosen on the first, reported on
-- the second. Intervals (*_lo, *_hi) are bootstrap intervals over problems (sql/macros.sql): in each
-- replicate the rule, the base and the RL checkpoint are scored on the same resampled problems; the
-- replicates of accuracy and gap_moved are kept for paired differences (js against random).
-- The random control runs once per coin seed (cross_samples.coin): its row pools them all, and
-- coin_seeds, gap_moved_by_coin and gap_moved_report_by_coin give each seed's own gap_moved (every problem,
-- held-out half): the control's spread over its coins. Other rules have one seed (0) and null lists.
WITH problems AS (
    SELECT dataset, problem_id FROM base_scores UNION SELECT dataset, problem_id FROM scores
),
scoped AS (  -- every problem in scope 'all' and in its half, indexed within the scope for the bootstrap
    SELECT dataset, problem_id, scope,
           (row_number() OVER (PARTITION BY scope ORDER BY dataset, problem_id) - 1)::INTEGER AS p,
           count(*) OVER (PARTITION BY scope) AS n_problems
    FROM (SELECT dataset, problem_id, 'all' AS scope FROM problems
          UNION ALL
          SELECT dataset, problem_id, problem_half(dataset, problem_id) FROM problems)
),
draws AS (  -- intervals over every problem and over the held-out half
    SELECT s.scope, r.b, bootstrap_pick(r.b, s.p, s.n_problems) AS p
    FROM range(bootstrap_resamples()) r(b) CROSS JOIN scoped s
    WHERE s.scope IN ('all', 'report')
),
alone_per_problem AS (
    SELECT s.scope, s.p, 'base' AS policy, sum(x.correct::INTEGER) AS k, count(*) AS n
    FROM base_scores x JOIN scoped s USING (dataset, problem_id) GROUP BY s.scope, s.p
    UNION ALL
    SELECT s.scope, s.p, 'rl', sum(x.correct::INTEGER), count(*)
    FROM scores x JOIN scoped s USING (dataset, problem_id) GROUP BY s.scope, s.p
),
alone AS (  -- base and RL accuracy per scope, and per replicate
    SELECT scope, NULL::BIGINT AS b,
           sum(k) FILTER (WHERE policy = 'base') / sum(n) FILTER (WHERE policy = 'base') AS base_accuracy,
           sum(k) FILTER (WHERE policy = 'rl') / sum(n) FILTER (WHERE policy = 'rl') AS rl_accuracy
    FROM alone_per_problem GROUP BY scope
    UNION ALL
    SELECT d.scope, d.b,
           sum(a.k) FILTER (WHERE a.policy = 'base') / sum(a.n) FILTER (WHERE a.policy = 'base'),
           sum(a.k) FILTER (WHERE a.policy = 'rl') / sum(a.n) FILTER (WHERE a.policy = 'rl')
    FROM draws d JOIN alone_per_problem a USING (scope, p) GROUP BY d.scope, d.b
),
samples AS (
    SELECT cs.*, sc.correct
    FROM cross_samples cs LEFT JOIN cross_scores sc ON sc.cross_sample_id = cs.cross_sample_id
),
rule_per_problem AS (
    SELECT x.direction, x.criterion, x.eps, s.scope, s.p, sum(x.correct::INTEGER) AS k, count(*) AS n,
           sum(x.n_switched) AS switched, sum(x.n_tokens) AS tokens
    FROM samples x JOIN scoped s ON s.dataset = x.dataset AND s.problem_id = x.problem_id
    GROUP BY x.direction, x.criterion, x.eps, s.scope, s.p
),
rule_scoped AS (  -- per scope, and per replicate
    SELECT direction, criterion, eps, scope, NULL::BIGINT AS b,
           sum(k) / sum(n) AS accuracy, sum(switched) / greatest(sum(tokens), 1) AS switched_share
    FROM rule_per_problem GROUP BY direction, criterion, eps, scope
    UNION ALL
    SELECT r.direction, r.criterion, r.eps, r.scope, d.b,
           sum(r.k) / sum(r.n), sum(r.switched) / greatest(sum(r.tokens), 1)
    FROM draws d JOIN rule_per_problem r USING (scope, p)
    GROUP BY r.direction, r.criterion, r.eps, r.scope, d.b
),
moved AS (
    SELECT r.direction, r.criterion, r.eps, r.scope, r.b, r.accuracy, r.switched_share,
           gap_moved(r.direction, r.accuracy, a.base_accuracy, a.rl_accuracy) AS gap_moved
    FROM rule_scoped r JOIN alone a ON a.scope = r.scope AND a.b IS NOT DISTINCT FROM r.b
),
by_rule AS (
    SELECT direction, criterion, eps,
           list(accuracy::FLOAT ORDER BY b) FILTER (WHERE scope = 'all' AND b IS NOT NULL) AS accuracy_replicates,
           list(gap_moved::FLOAT ORDER BY b) FILTER (WHERE scope = 'all' AND b IS NOT NULL) AS gap_moved_replicates,
           list(switched_share::FLOAT ORDER BY b) FILTER (WHERE scope = 'all' AND b IS NOT NULL) AS switched_share_replicates,
           any_value(switched_share) FILTER (WHERE scope = 'select' AND b IS NULL) AS switched_share_select,
           any_value(gap_moved) FILTER (WHERE scope = 'select' AND b IS NULL) AS gap_moved_select,
           any_value(accuracy) FILTER (WHERE scope = 'report' AND b IS NULL) AS accuracy_report,
           any_value(switched_share) FILTER (WHERE scope = 'report' AND b IS NULL) AS switched_share_report,
           any_value(gap_moved) FILTER (WHERE scope = 'report' AND b IS NULL) AS gap_moved_report,
           list(gap_moved::FLOAT ORDER BY b) FILTER (WHERE scope = 'report' AND b IS NOT NULL) AS gap_moved_report_replicates
    FROM moved GROUP BY direction, criterion, eps
),
rules AS (
    SELECT direction, criterion, eps,
           count(*) AS n,
           avg(correct::INTEGER)::DOUBLE AS accuracy,
           (sum(n_switched) / greatest(sum(n_tokens), 1))::DOUBLE AS switched_share,
           avg(n_switched)::DOUBLE AS switched_count,
           avg(n_switched / greatest(n_tokens, 1))::DOUBLE AS switched_share_per_response,
           avg(n_tokens)::DOUBLE AS mean_tokens,
           avg((n_switched > 0)::INTEGER)::DOUBLE AS share_switched_at_least_once,
           avg(list_min(switched_positions))::DOUBLE AS mean_first_switch_position,
           median(list_min(switched_positions))::DOUBLE AS median_first_switch_position,
           first(switch_prob) AS switch_prob
    FROM samples
    GROUP BY direction, criterion, eps
),
by_coin AS (  -- the random control per coin seed, on every problem and on the held-out half
    SELECT x.direction, x.criterion, x.eps, x.coin,
           sum(x.correct::INTEGER) / count(*) AS accuracy,  -- a missing verdict counts as wrong, as in the pooled row
           sum(x.correct::INTEGER) FILTER (WHERE problem_half(x.dataset, x.problem_id) = 'report')
               / count(*) FILTER (WHERE problem_half(x.dataset, x.problem_id) = 'report') AS accuracy_report
    FROM samples x WHERE x.criterion = 'random'
    GROUP BY x.direction, x.criterion, x.eps, x.coin
),
coins AS (
    SELECT c.direction, c.criterion, c.eps, count(*) AS coin_seeds,
           list(gap_moved(c.direction, c.accuracy, a.base_accuracy, a.rl_accuracy)::FLOAT ORDER BY c.coin)
               AS gap_moved_by_coin,
           list(gap_moved(c.direction, c.accuracy_report, h.base_accuracy, h.rl_accuracy)::FLOAT ORDER BY c.coin)
               AS gap_moved_report_by_coin
    FROM by_coin c
    CROSS JOIN (SELECT * FROM alone WHERE scope = 'all' AND b IS NULL) a
    CROSS JOIN (SELECT * FROM alone WHERE scope = 'report' AND b IS NULL) h
    GROUP BY c.direction, c.criterion, c.eps
),
everything AS (SELECT base_accuracy::DOUBLE AS base_accuracy, rl_accuracy::DOUBLE AS rl_accuracy
               FROM alone WHERE scope = 'all' AND b IS NULL)
SELECT $checkpoint AS checkpoint, r.*, a.base_accuracy, a.rl_accuracy,
       gap_moved(r.direction, r.accuracy, a.base_accuracy, a.rl_accuracy) AS gap_moved,
       interval_low(m.accuracy_replicates) AS accuracy_lo, interval_high(m.accuracy_replicates) AS accuracy_hi,
       interval_low(m.gap_moved_replicates) AS gap_moved_lo, interval_high(m.gap_moved_replicates) AS gap_moved_hi,
       interval_low(m.switched_share_replicates) AS switched_share_lo,
       interval_high(m.switched_share_replicates) AS switched_share_hi,
       m.switched_share_select::DOUBLE AS switched_share_select, m.gap_moved_select::DOUBLE AS gap_moved_select,
       m.accuracy_report::DOUBLE AS accuracy_report, m.switched_share_report::DOUBLE AS switched_share_report,
       m.gap_moved_report::DOUBLE AS gap_moved_report,
       interval_low(m.gap_moved_report_replicates) AS gap_moved_report_lo,
       interval_high(m.gap_moved_report_replicates) AS gap_moved_report_hi,
       (SELECT any_value(n_problems) FILTER (WHERE scope = 'all') FROM scoped) AS n_problems,
       (SELECT any_value(n_problems) FILTER (WHERE scope = 'select') FROM scoped) AS n_problems_select,
       (SELECT any_value(n_problems) FILTER (WHERE scope = 'report') FROM scoped) AS n_problems_report,
       'problem' AS bootstrap_unit, bootstrap_resamples() AS bootstrap_resamples, bootstrap_seed() AS bootstrap_seed,
       m.accuracy_replicates, m.gap_moved_replicates, m.gap_moved_report_replicates,
       coalesce(k.coin_seeds, 1) AS coin_seeds, k.gap_moved_by_coin, k.gap_moved_report_by_coin
FROM rules r
CROSS JOIN everything a
LEFT JOIN by_rule m USING (direction, criterion, eps)
LEFT JOIN coins k USING (direction, criterion, eps)
ORDER BY r.direction, r.criterion, r.eps
