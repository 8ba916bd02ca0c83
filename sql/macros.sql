-- The study's constants and buckets, defined once: every table (sql/tables) and every query (sql/queries)
-- runs with these macros, over the lake (`shiftlake sql`) and over an asset's frames alike.
CREATE OR REPLACE MACRO near_zero_js() AS 1e-3;      -- "the distribution did not move"
CREATE OR REPLACE MACRO small_js() AS 1e-2;
CREATE OR REPLACE MACRO high_js() AS 0.1;            -- "RL moved this token"
CREATE OR REPLACE MACRO low_entropy() AS 0.1;        -- nats: the base was nearly sure of its next token
CREATE OR REPLACE MACRO top_share() AS 0.05;         -- the top-5% of tokens by JS, per checkpoint and policy
CREATE OR REPLACE MACRO token_budget() AS 0.10;      -- cross-sampling rules compared at <= 10% switched tokens
CREATE OR REPLACE MACRO ab_reference_arm() AS 'grpo';  -- training_curves: the arm others are compared with
CREATE OR REPLACE MACRO position_bins() AS 10;       -- relative position in the response, [0, 1) in 10 bins
CREATE OR REPLACE MACRO position_bin(rel) AS least(greatest(floor(rel * position_bins()), 0), position_bins() - 1)::INTEGER;
-- the base's entropy (nats) in five buckets: [0, 0.01), [0.01, 0.1), [0.1, 0.5), [0.5, 1), [1, inf)
CREATE OR REPLACE MACRO entropy_bucket(e) AS
    CASE WHEN e < 0.01 THEN 0 WHEN e < 0.1 THEN 1 WHEN e < 0.5 THEN 2 WHEN e < 1.0 THEN 3 ELSE 4 END;
CREATE OR REPLACE MACRO entropy_bucket_labels() AS ['[0, 0.01)', '[0.01, 0.1)', '[0.1, 0.5)', '[0.5, 1)', '[1, inf)'];
-- JS in five buckets: [0, 1e-4), [1e-4, 1e-3), [1e-3, 1e-2), [1e-2, 0.1), [0.1, inf)
CREATE OR REPLACE MACRO js_bucket(js) AS
    CASE WHEN js < 1e-4 THEN 0 WHEN js < 1e-3 THEN 1 WHEN js < 1e-2 THEN 2 WHEN js < 0.1 THEN 3 ELSE 4 END;
CREATE OR REPLACE MACRO js_bucket_labels() AS ['[0, 1e-4)', '[1e-4, 1e-3)', '[1e-3, 1e-2)', '[1e-2, 0.1)', '[0.1, inf)'];
-- the quantiles of the JS curve (figure 1); js_p50 ... js_p99 are five of them
CREATE OR REPLACE MACRO js_curve_quantiles() AS
    [0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999];
-- where RL's top-1 token sits in the base's ranking, in five buckets: 1, 2, 3, 4-10, > 10
CREATE OR REPLACE MACRO rank_bucket(rank) AS
    CASE WHEN rank <= 3 THEN rank - 1 WHEN rank <= 10 THEN 3 ELSE 4 END;
CREATE OR REPLACE MACRO rank_bucket_labels() AS ['1', '2', '3', '4-10', '>10'];
-- Uncertainty: 95% percentile-bootstrap intervals with problems as the resampling unit (a problem's samples
-- stay together), bootstrap_resamples() resamples from bootstrap_seed(). A draw depends on the seed, the
-- resample b and the slot i only, so every table resamples the same problems of the same problem set
-- (problems indexed 0 .. n - 1 by dataset and problem_id): differences between policies, checkpoints and
-- rules are paired, replicate by replicate.
CREATE OR REPLACE MACRO bootstrap_resamples() AS 1000;
CREATE OR REPLACE MACRO bootstrap_seed() AS 0;
CREATE OR REPLACE MACRO interval_level() AS 0.95;
CREATE OR REPLACE MACRO hash32_a(x) AS (xor(x, x >> 16) * 2146121005) % 4294967296;  -- lowbias32's steps
CREATE OR REPLACE MACRO hash32_b(x) AS (xor(x, x >> 15) * 2221713035) % 4294967296;
CREATE OR REPLACE MACRO hash32(x) AS xor(hash32_b(hash32_a(x::UBIGINT)), hash32_b(hash32_a(x::UBIGINT)) >> 16);
-- the index of the problem drawn into slot i of resample b, out of n problems
CREATE OR REPLACE MACRO bootstrap_pick(b, i, n) AS
    (hash32(xor((b * 1048576 + i) % 4294967296, hash32(bootstrap_seed()))) % n)::INTEGER;
-- the interval's ends from a list of replicates
CREATE OR REPLACE MACRO interval_low(replicates) AS
    (SELECT quantile_cont(x, (1 - interval_level()) / 2) FROM unnest(replicates) t(x))::DOUBLE;
CREATE OR REPLACE MACRO interval_high(replicates) AS
    (SELECT quantile_cont(x, (1 + interval_level()) / 2) FROM unnest(replicates) t(x))::DOUBLE;
-- replicate by replicate a - b (lists of the same problem set's replicates): a paired difference
CREATE OR REPLACE MACRO paired_difference(a, b) AS [a[i] - b[i] FOR i IN range(1, len(a) + 1)];
-- Held-out selection: a fixed split of the problems by a hash of their id. Rules (an eps for the js
-- criterion) are chosen on the 'select' half and reported on the 'report' half, never on the rows that chose them.
CREATE OR REPLACE MACRO problem_half(dataset, problem_id) AS
    CASE WHEN substr(md5(dataset || '/' || problem_id), 1, 1) < '8' THEN 'select' ELSE 'report' END;
-- the share of the RL-minus-base accuracy gap a cross-sampling rule moves: recovered for forward (base
-- primary), lost for reverse (RL primary); null when the gap is zero
CREATE OR REPLACE MACRO gap_moved(direction, accuracy, base_accuracy, rl_accuracy) AS
    (CASE WHEN direction = 'forward' THEN accuracy - base_accuracy ELSE rl_accuracy - accuracy END)
        / nullif(rl_accuracy - base_accuracy, 0) + 0.0;  -- + 0.0: no -0.0 when nothing moved
