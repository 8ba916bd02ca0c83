-- One row per checkpoint and policy of every partition under {lake}/summaries/ (written by the summaries assets).
CREATE OR REPLACE VIEW summaries AS
SELECT * FROM read_parquet('{lake}/summaries/*/data.parquet', union_by_name = true, hive_partitioning = false);
