-- One row per sampled response of every partition under {lake}/rollouts/ (written by the rollouts assets).
CREATE OR REPLACE VIEW rollouts AS
SELECT * FROM read_parquet('{lake}/rollouts/*/data.parquet', union_by_name = true, hive_partitioning = false);
