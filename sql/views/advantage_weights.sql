-- One row per token of each checkpoint's own rollouts under {lake}/advantage_weights/: the divergence-weighted
-- advantage's weight w = 1 + s (sigmoid(alpha d) - 1/2), d the token's divergence of kind `divergence`.
-- A trainer joins it to its rollouts on (checkpoint, rollout_id, position).
CREATE OR REPLACE VIEW advantage_weights AS
SELECT * FROM read_parquet('{lake}/advantage_weights/*/data.parquet', union_by_name = true, hive_partitioning = false);
