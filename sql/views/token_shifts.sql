-- One row per response token of every partition under {lake}/token_shifts/ (written by the token_shifts assets).
CREATE OR REPLACE VIEW token_shifts AS
SELECT * FROM read_parquet('{lake}/token_shifts/*/data.parquet', union_by_name = true, hive_partitioning = false);
