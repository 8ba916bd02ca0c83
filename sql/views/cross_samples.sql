-- One row per lockstep response of every partition under {lake}/cross_samples/ (direction, criterion, eps).
CREATE OR REPLACE VIEW cross_samples AS
SELECT * FROM read_parquet('{lake}/cross_samples/*/data.parquet', union_by_name = true, hive_partitioning = false);
