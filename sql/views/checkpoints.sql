-- One row per model (the base, RL and SFT checkpoints) of every partition under {lake}/checkpoints/ (written by the checkpoints assets).
CREATE OR REPLACE VIEW checkpoints AS
SELECT * FROM read_parquet('{lake}/checkpoints/*/data.parquet', union_by_name = true, hive_partitioning = false);
