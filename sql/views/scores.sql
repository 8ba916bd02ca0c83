-- One row per verdict of every partition under {lake}/scores/ (written by the scores assets).
CREATE OR REPLACE VIEW scores AS
SELECT * FROM read_parquet('{lake}/scores/*/data.parquet', union_by_name = true, hive_partitioning = false);
