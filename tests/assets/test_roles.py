"""Role sft: a supervised run's checkpoint (the small world's SFT run on its RL policy's correct samples), named by
the rule (`sft-checkpoint-4`) beside the RL run's `checkpoint-4`, lands in every table, view, query and figure next
to the RL checkpoint of the same step, through the same Dagster runs."""

import shutil

import dagster as dg
import polars as pl
import pytest

from compute import figures, lakesql
from compute.toyworld.world import SMALL, build_sft
from tests.conftest import materialise_all, study_settings

RL, SFT = "rl-step-000004", "sft-step-000004"
PER_CHECKPOINT = ("rollouts", "token_shifts", "cross_samples", "scores", "cross_scores", "summaries", "cross_summaries")


@pytest.fixture(scope="module")
def roles_lake(small_world, world_root, small_ab, tmp_path_factory) -> str:
    sft = build_sft(SMALL, root=world_root, log=lambda *_: None)
    study = tmp_path_factory.mktemp("roles")
    shutil.copytree(small_world / "checkpoints" / "checkpoint-4", study / "checkpoints" / "checkpoint-4")
    shutil.copytree(sft / "checkpoint-4", study / "checkpoints" / "sft-checkpoint-4")
    settings = study_settings(small_world, study / "lake", checkpoints_url=str(study / "checkpoints"),
                              ab_curves_url=str(small_ab))
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialise_all(settings, instance) == [RL, SFT]
    return settings.lake_url


def test_the_sft_checkpoint_is_in_every_table_with_its_role(roles_lake):
    roles = lakesql.run("SELECT checkpoint, role, step FROM checkpoints ORDER BY role", roles_lake)
    assert roles.rows() == [("base", "base", None), (RL, "rl", 4), (SFT, "sft", 4)]
    for view in PER_CHECKPOINT:
        counts = dict(lakesql.run(f"SELECT checkpoint, count(*) FROM {view} GROUP BY ALL", roles_lake).rows())
        assert counts.get(RL, 0) > 0 and counts.get(SFT, 0) > 0, (view, counts)
    # the SFT model is not the RL model: its own samples differ (same seeds, other weights)
    texts = lakesql.run("SELECT checkpoint, list(response_text ORDER BY rollout_id) AS t FROM rollouts "
                        "WHERE policy = 'rl' GROUP BY ALL", roles_lake)
    by_checkpoint = {row["checkpoint"]: row["t"] for row in texts.iter_rows(named=True)}
    assert by_checkpoint[RL] != by_checkpoint[SFT]


def test_the_trend_and_the_queries_compare_roles(roles_lake):
    trend = lakesql.run(lakesql.query_text("checkpoint_trend"), roles_lake)
    assert trend.select("role", "checkpoint").rows() == [("rl", RL), ("sft", SFT)]
    assert trend["rl_accuracy_change"].is_null().all()  # changes are within a role: each has one checkpoint here
    roles = lakesql.run(lakesql.query_text("roles"), roles_lake)
    assert roles.select("step", "role", "checkpoint").rows() == [(4, "rl", RL), (4, "sft", SFT)]
    summaries = lakesql.run("SELECT * FROM summaries WHERE policy = 'rl'", roles_lake)
    for row in roles.iter_rows(named=True):
        own = summaries.filter(pl.col("checkpoint") == row["checkpoint"]).row(0, named=True)
        for column in ("accuracy", "share_js_lt_1e3", "js_p99", "high_js_rl_top1_in_base_top3"):
            assert row[column] == own[column], column
        assert row["top5pct_share_first_tenth"] == own["position_top5pct_share"][0]
        assert row["forward_js_gap_moved"] == trend.filter(pl.col("checkpoint") == row["checkpoint"])[
            "forward_js_gap_moved"][0]
    findings = lakesql.run(lakesql.query_text("findings"), roles_lake)
    assert {"RL accuracy", "SFT accuracy"} <= set(findings["measure"])
    assert findings.filter(pl.col("measure") == "SFT accuracy")["checkpoint"].to_list() == [SFT]
    order = findings["checkpoint"].to_list()  # each checkpoint's lines together, the RL run's first
    assert order == [RL] * order.count(RL) + [SFT] * order.count(SFT)
    assert lakesql.run(lakesql.query_text("demo_summary"), roles_lake)["role"].to_list() == ["rl", "sft"]


COMPARED = ("js_percentile_curve", "position_profile", "topk_reranking", "cross_sampling_curve")


@pytest.mark.parametrize("make", [make for make, _ in figures.FIGURES], ids=lambda f: f.__name__)
def test_each_figure_draws_the_other_roles_checkpoint_at_the_same_step(roles_lake, make):
    for mine, other in ((RL, SFT), (SFT, RL)):
        fig = make(roles_lake, mine)
        drawn = set(fig.data["checkpoint"]) if "checkpoint" in fig.data.columns else set()
        if fig.name == "checkpoint_trend":
            assert set(fig.data["role"]) == {"rl", "sft"}
        elif fig.name == "advantage_ab":  # the A/B's runs are no checkpoint of the study: the same on every page
            assert "checkpoint" not in fig.data.columns and mine not in fig.title
        elif fig.name in COMPARED:
            query = lakesql.run(lakesql.query_text(fig.name), roles_lake)
            if query.filter(pl.col("checkpoint") == other).height:  # (no high-JS token, no reranking row)
                assert drawn == {mine, other} and fig.title.endswith(f"({mine}, beside {other})"), fig.title
            if "policy" in fig.data.columns:  # the other role's own tokens only
                assert set(fig.data.filter(pl.col("checkpoint") == other)["policy"]) <= {"rl"}
        else:  # one checkpoint's own: the entropy grid sums its tokens, the drill-down shows its responses
            assert drawn <= {mine} and fig.title.endswith(f"({mine})")
        assert fig.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures.counterparts(roles_lake, RL) == [SFT] and figures.counterparts(roles_lake, SFT) == [RL]
