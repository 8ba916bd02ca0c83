-- One row per checkpoint, direction, criterion and eps of every partition under {lake}/cross_summaries/.
CREATE OR REPLACE VIEW cross_summaries AS
SELECT * FROM read_parquet('{lake}/cross_summaries/*/data.parquet', union_by_name = true, hive_partitioning = false);
