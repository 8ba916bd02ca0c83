"""DuckDB views and every named query over a real lake, checked against the Parquet read by polars."""

import csv
import io
import json

import polars as pl
import pytest

from compute import lake as lakeio
from compute import lakesql
from orchestration.app.cli import main


def test_every_view_reads_its_table(lake):
    url, keys = lake
    con = lakesql.connect(url)
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert views == {"problems", "checkpoints", "rollouts", "token_shifts", "advantage_weights", "scores", "summaries",
                     "cross_samples", "cross_scores", "cross_summaries", "trend", "training_curves"}
    for view in views:
        parts = lakeio.list_partitions(url, view) or [""]
        expected = sum(lakeio.read_partition(url, view, p).height for p in parts)
        assert con.execute(f"SELECT count(*) FROM {view}").fetchone()[0] == expected, view


@pytest.mark.parametrize("name", lakesql.list_queries())
def test_every_named_query_runs_and_returns_rows(lake, name):
    url, _ = lake
    frame = lakesql.run(lakesql.query_text(name), url)
    # the small world may have no JS > 0.1 token; roles compares RL and SFT runs, and this lake has no SFT run
    # (tests/assets/test_roles.py has one)
    assert frame.height > 0 or name in ("topk_reranking", "roles"), name


def test_js_percentiles_match_polars(lake):
    url, keys = lake
    frame = lakesql.run(lakesql.query_text("js_percentiles"), url)
    for key in keys:
        shifts = lakeio.read_partition(url, "token_shifts", f"checkpoint={key}")
        for policy in ("base", "rl"):
            js = shifts.filter(pl.col("policy") == policy)["js"].cast(pl.Float64)
            row = frame.filter((pl.col("checkpoint") == key) & (pl.col("policy") == policy)).row(0, named=True)
            assert row["n_tokens"] == js.len()
            for q in (50, 90, 99):
                assert row[f"js_p{q}"] == pytest.approx(js.quantile(q / 100, "linear"), rel=1e-6, abs=1e-12)
            assert row["share_js_lt_1e3"] == pytest.approx((js < 1e-3).mean())


def test_position_profile_shares_sum_to_one(lake):
    url, _ = lake
    frame = lakesql.run(lakesql.query_text("position_profile"), url)
    sums = frame.group_by("checkpoint", "policy").agg(pl.col("share_of_top5pct").sum())
    assert sums["share_of_top5pct"].to_list() == pytest.approx([1.0] * sums.height)


def test_accuracy_query_matches_scores(lake):
    url, keys = lake
    frame = lakesql.run(lakesql.query_text("accuracy_by_checkpoint"), url)
    assert frame["checkpoint"].to_list() == ["base", *keys]
    for key in keys:
        scores = lakeio.read_partition(url, "scores", f"checkpoint={key}")
        got = frame.filter(pl.col("checkpoint") == key)["accuracy"][0]
        assert got == pytest.approx(scores["correct"].mean())


def test_cli_prints_table_csv_and_json(lake, capsys):
    url, _ = lake
    long_sql = "SELECT count(*) AS n FROM scores WHERE " + " OR ".join(["correct"] * 100)  # not a file name
    assert main(["sql", long_sql, "--lake", url, "--format", "csv"]) == 0
    n = int(capsys.readouterr().out.splitlines()[1])
    assert n == lakesql.run("SELECT count(*) FROM scores WHERE correct", url).item()
    assert main(["sql", "accuracy_by_checkpoint", "--lake", url, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("checkpoint,step,role,policy")
    assert main(["sql", "--file", "sql/queries/js_percentiles.sql", "--lake", url, "--format", "json"]) == 0
    assert {"checkpoint", "js_p99"} <= set(json.loads(capsys.readouterr().out)[0])
    # list columns go to CSV as JSON arrays
    assert main(["sql", "SELECT rollout_id, top5_ids_base FROM token_shifts ORDER BY rollout_id, position LIMIT 1",
                 "--lake", url, "--format", "csv"]) == 0
    row = next(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    first = lakesql.run("SELECT top5_ids_base FROM token_shifts ORDER BY rollout_id, position LIMIT 1", url).item()
    assert json.loads(row["top5_ids_base"]) == first.to_list()


def test_cli_names_the_fix_for_a_missing_table(tmp_path, capsys):
    assert main(["sql", "SELECT * FROM token_shifts", "--lake", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "token_shifts" in err and "make demo" in err


def test_checkpoint_trend_reads_each_checkpoint_by_step(lake):
    url, keys = lake
    trend = lakesql.run(lakesql.query_text("checkpoint_trend"), url)
    assert trend["checkpoint"].to_list() == keys and trend["step"].to_list() == [2, 4]
    assert trend["js_p99_vs_first"][0] == pytest.approx(1.0)
    for key in keys:
        rl = lakeio.read_partition(url, "summaries", f"checkpoint={key}").filter(pl.col("policy") == "rl").row(0, named=True)
        row = trend.filter(pl.col("checkpoint") == key).row(0, named=True)
        for col in ("rl_accuracy", "js_p50", "js_p99", "share_js_lt_1e3"):
            assert row[col] == pytest.approx(rl["accuracy" if col == "rl_accuracy" else col]), col


def test_one_connection_serves_every_query_of_a_lake_in_the_block_and_closes_after(tmp_path, monkeypatch):
    """A report's queries share one connection per lake (`lakesql.one_connection`), each lake its own, with the same
    answers and the same message for a missing table; outside the block every query connects afresh."""
    lakes = [tmp_path / "a", tmp_path / "b"]
    for i, url in enumerate(lakes):
        lakeio.write_partition(str(url), "problems", "", pl.DataFrame({"problem_id": [f"p{i}", "q"]}))
    made = []
    connect = lakesql.connect
    monkeypatch.setattr(lakesql, "connect", lambda url=None: made.append(connect(url)) or made[-1])
    count = "SELECT count(*) AS n, min(problem_id) AS first FROM problems"
    with lakesql.one_connection():
        for _ in range(2):
            assert [lakesql.run(count, str(url)).row(0) for url in lakes] == [(2, "p0"), (2, "p1")]
        with pytest.raises(LookupError, match="does not have that table yet"):
            lakesql.run("SELECT * FROM token_shifts", str(lakes[0]))
        assert lakesql.run(count, str(lakes[0])).row(0) == (2, "p0")  # the connection outlives a failed query
        assert len(made) == 2
    with pytest.raises(Exception, match="closed"):
        made[0].execute("SELECT 1")
    lakesql.run(count, str(lakes[0]))
    assert len(made) == 3
