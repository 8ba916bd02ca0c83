"""The HTML report: seven sections, each with its PNG embedded, written into the lake (local folder and
the S3 server); a missing table leaves its section saying so; `shiftlake report` writes and copies it."""

import base64
import re
import shutil

import pytest

from compute import lake as lakeio
from compute import figures, report
from orchestration.app.cli import main

SECTIONS = [make.__name__ for make, _ in figures.FIGURES]


def _sections(html: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([a-z_]+)">(.*?)</section>', html, flags=re.S))


def test_report_has_seven_sections_with_their_figures_and_lives_in_the_lake(lake):
    url, keys = lake
    path, drawn = report.write_report(url, keys[-1])
    assert path == report.report_path(url, keys[-1]) and path.endswith(f"reports/checkpoint={keys[-1]}/report.html")
    html = lakeio.read_file(url, "reports", f"checkpoint={keys[-1]}", "report.html").decode()
    sections = _sections(html)
    assert list(sections) == SECTIONS == [f.name for f in drawn]
    for (name, body), fig in zip(sections.items(), drawn):
        image = re.search(r'src="data:image/png;base64,([^"]+)"', body).group(1)
        assert base64.b64decode(image) == fig.png, name  # the figure itself, not a link
        assert f"shiftlake sql {name}" in body
    assert "<mark" in sections["token_drilldown"]


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_a_table_not_yet_materialised_leaves_its_section_saying_so(lake, tmp_path):
    url, keys = lake
    partial = tmp_path / "lake"
    shutil.copytree(url, partial, ignore=lambda folder, names: ["trend"] if folder == url else [])
    html, drawn = report.render(str(partial), keys[0])
    sections = _sections(html)
    assert list(sections) == SECTIONS
    assert "not available yet" in sections["checkpoint_trend"] and "trend" in sections["checkpoint_trend"]
    assert sum(isinstance(f, str) for f in drawn) == 1 and "data:image/png" in sections["token_drilldown"]


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_cli_writes_the_report_and_names_unknown_checkpoints(lake, tmp_path, capsys):
    url, keys = lake
    out = tmp_path / "copy.html"
    assert main(["report", "--checkpoint", keys[0], "--lake", url, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert report.report_path(url, keys[0]) in printed
    assert out.read_bytes() == lakeio.read_file(url, "reports", f"checkpoint={keys[0]}", "report.html")
    assert main(["report", "--checkpoint", "rl-step-999999", "--lake", url]) == 1
    err = capsys.readouterr().err
    assert "rl-step-999999" in err and keys[0] in err
