-- One row per analysed checkpoint, RL and SFT (written by the trend asset under {lake}/trend/).
CREATE OR REPLACE VIEW trend AS
SELECT * FROM read_parquet('{lake}/trend/data.parquet');
