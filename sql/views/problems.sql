-- The problems the study samples from (dataset, problem_id, prompt, answer).
CREATE OR REPLACE VIEW problems AS
SELECT * FROM read_parquet('{lake}/problems/data.parquet');
