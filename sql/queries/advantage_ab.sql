-- The A/B of a training change (the divergence-weighted advantage, in the toy world: `shiftlake demo --ab`): per arm
-- and evaluated step, accuracy over every seed's responses with its 95% bootstrap interval, the range of the seeds'
-- own accuracies, and the difference from ab_reference_arm() at the same step with a paired interval. The
-- bootstrap resamples seeds and problems together (both vary between runs of the A/B; seeds drawn at slots
-- 1048575 - q of the same resample, problems at slots p, sql/macros.sql), the same draws for every arm and step.
WITH problem_index AS (
    SELECT dataset, problem_id, (row_number() OVER (ORDER BY dataset, problem_id) - 1)::INTEGER AS p,
           count(*) OVER () AS n_problems
    FROM (SELECT DISTINCT dataset, problem_id FROM training_curves)
),
seed_index AS (
    SELECT seed, (row_number() OVER (ORDER BY seed) - 1)::INTEGER AS q, count(*) OVER () AS n_seeds
    FROM (SELECT DISTINCT seed FROM training_curves)
),
cells AS (
    SELECT c.arm, c.step, c.seed, s.q, i.p, c.correct AS k, c.n
    FROM training_curves c JOIN problem_index i USING (dataset, problem_id) JOIN seed_index s USING (seed)
),
problem_draws AS (
    SELECT r.b, bootstrap_pick(r.b, i.p, i.n_problems) AS p, count(*) AS m
    FROM range(bootstrap_resamples()) r(b) CROSS JOIN problem_index i GROUP BY ALL
),
seed_draws AS (
    SELECT r.b, bootstrap_pick(r.b, 1048575 - s.q, s.n_seeds) AS q, count(*) AS m
    FROM range(bootstrap_resamples()) r(b) CROSS JOIN seed_index s GROUP BY ALL
),
replicates AS (
    SELECT c.arm, c.step, pd.b, sum(c.k * pd.m * sd.m) / sum(c.n * pd.m * sd.m) AS accuracy
    FROM cells c JOIN problem_draws pd USING (p) JOIN seed_draws sd ON sd.b = pd.b AND sd.q = c.q
    GROUP BY ALL
),
arms AS (
    SELECT c.arm, c.step, count(DISTINCT c.seed) AS n_seeds, count(DISTINCT c.p) AS n_problems, sum(c.n) AS n,
           sum(c.k) / sum(c.n) AS accuracy,
           (SELECT list(r.accuracy ORDER BY r.b) FROM replicates r WHERE r.arm = c.arm AND r.step = c.step)
               AS replicates
    FROM cells c GROUP BY c.arm, c.step
),
seeds AS (
    SELECT arm, step, min(accuracy) AS seed_min, max(accuracy) AS seed_max
    FROM (SELECT arm, step, seed, sum(k) / sum(n) AS accuracy FROM cells GROUP BY ALL) GROUP BY ALL
)
SELECT a.arm, a.step, a.n_seeds, a.n_problems, a.n, a.accuracy,
       interval_low(a.replicates) AS accuracy_lo, interval_high(a.replicates) AS accuracy_hi,
       s.seed_min, s.seed_max,
       ab_reference_arm() AS reference_arm,
       a.accuracy - ref.accuracy AS minus_reference,
       interval_low(paired_difference(a.replicates, ref.replicates)) AS minus_reference_lo,
       interval_high(paired_difference(a.replicates, ref.replicates)) AS minus_reference_hi
FROM arms a JOIN seeds s USING (arm, step)
LEFT JOIN arms ref ON ref.arm = ab_reference_arm() AND ref.step = a.step
ORDER BY a.arm = ab_reference_arm() DESC, a.arm, a.step;
