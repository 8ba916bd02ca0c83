"""Each figure on the small world's lake: a PNG is produced, every axes is labelled, and the data it
plots is exactly its named query's result."""

import html
import math

import polars as pl
import pytest

from compute import figures, lakesql
from compute import lake as lakeio


@pytest.mark.parametrize("lake", ["local"], indirect=True)
@pytest.mark.parametrize("draw", [make for make, _ in figures.FIGURES], ids=lambda f: f.__name__)
def test_figure_is_a_labelled_png_of_its_query(lake, draw, tmp_path):
    url, keys = lake
    checkpoint = keys[-1]
    fig = draw(url, checkpoint)
    assert fig.png[:8] == b"\x89PNG\r\n\x1a\n" and len(fig.png) > 5_000
    assert fig.axes_labels and all(x and y for x, y in fig.axes_labels), fig.axes_labels
    expected = lakesql.run(lakesql.query_text(fig.name), url)
    spans_all = fig.name in ("checkpoint_trend", "advantage_ab")  # every checkpoint; the A/B's runs
    if not spans_all:
        expected = expected.filter(pl.col("checkpoint") == checkpoint)
    if fig.name == "cross_sampling_curve":
        expected = expected.filter(pl.col("eps").is_finite())
    assert fig.data.equals(expected)
    # a page shows one partition's figures at a time: each names its checkpoint (the trend and the A/B span them all)
    assert fig.title.endswith(f"({checkpoint})") == (not spans_all), fig.title
    (tmp_path / f"{fig.name}.png").write_bytes(fig.png)


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_drilldown_marks_the_20_highest_js_tokens_with_both_top5s(lake, small_world):
    from transformers import AutoTokenizer

    url, keys = lake
    fig = figures.token_drilldown(url, keys[-1])
    responses = fig.data.partition_by("rollout_id", maintain_order=True)
    assert len(responses) == 3 and all(r["checkpoint"][0] == keys[-1] for r in responses)
    tokenizer = AutoTokenizer.from_pretrained(small_world / "base")
    for response in responses:
        shifts = lakeio.read_partition(url, "token_shifts", f"checkpoint={keys[-1]}").filter(
            pl.col("rollout_id") == response["rollout_id"][0]).sort("position")
        assert response["position"].to_list() == shifts["position"].to_list()  # every token, in order
        top = shifts.sort(["js", "position"], descending=[True, False]).head(figures.DRILLDOWN_TOP)
        marked = response.filter(pl.col("js_rank") <= figures.DRILLDOWN_TOP)
        assert sorted(marked["position"].to_list()) == sorted(top["position"].to_list())
        best = top.row(0, named=True)
        alternatives = ", ".join(f"{tokenizer.decode([i])!r} {math.exp(lp):.2f}"
                                 for i, lp in zip(best["top5_ids_rl"], best["top5_logp_rl"]))
        assert alternatives in fig.markdown and html.escape(alternatives) in fig.html
    assert fig.html.count("<mark") == sum(min(r.height, figures.DRILLDOWN_TOP) for r in responses)
