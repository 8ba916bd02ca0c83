-- One row per arm, seed, step and problem of the A/B's training curves (AB_CURVES_URL; the training_curves asset).
CREATE OR REPLACE VIEW training_curves AS
SELECT * FROM read_parquet('{lake}/training_curves/data.parquet');
