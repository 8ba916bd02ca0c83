-- One verdict per cross sample of every partition under {lake}/cross_scores/.
CREATE OR REPLACE VIEW cross_scores AS
SELECT * FROM read_parquet('{lake}/cross_scores/*/data.parquet', union_by_name = true, hive_partitioning = false);
