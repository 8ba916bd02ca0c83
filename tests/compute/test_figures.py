"""Each figure on the small world's lake: a PNG is produced, every axes is labelled, and the data it
plots is exactly its named query's result."""

import polars as pl
import pytest

from compute import figures, lakesql


@pytest.mark.parametrize("lake", ["local"], indirect=True)
@pytest.mark.parametrize("draw", figures.FIGURES, ids=lambda f: f.__name__)
def test_figure_is_a_labelled_png_of_its_query(lake, draw, tmp_path):
    url, keys = lake
    checkpoint = keys[-1]
    fig = draw(url, checkpoint)
    assert fig.png[:8] == b"\x89PNG\r\n\x1a\n" and len(fig.png) > 5_000
    assert fig.axes_labels and all(x and y for x, y in fig.axes_labels), fig.axes_labels
    expected = lakesql.run(lakesql.query_text(fig.name), url)
    if fig.name != "checkpoint_trend":
        expected = expected.filter(pl.col("checkpoint") == checkpoint)
    if fig.name == "cross_sampling_curve":
        expected = expected.filter(pl.col("eps").is_finite())
    assert fig.data.equals(expected)
    (tmp_path / f"{fig.name}.png").write_bytes(fig.png)
