"""`shiftlake demo` end to end on the small world: a real persistent Dagster instance, a fresh lake,
the summary and the reports' paths printed, one successful materialisation per asset and checkpoint in
the event log; then the Dagster UI on that instance and the HTML report, both in headless Chromium."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from compute.paths import REPO_ROOT
from compute.figures import FIGURES
from compute.processes import stop_group
from orchestration.app import live
from tests.e2e import browser

KEYS = ("rl-step-000002", "rl-step-000004")
SCREENSHOTS = Path(os.environ.get("SHIFTLAKE_SCREENSHOTS") or REPO_ROOT / ".shiftlake" / "screenshots")
FIGURE_NAMES = [make.__name__ for make, _ in FIGURES]


@pytest.fixture(scope="module")
def demo(small_world, world_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "SHIFTLAKE_CACHE": str(world_root.parent), "SHIFTLAKE_TOY_WORLD": "small",
           "LAKE_URL": str(root / "lake"), "DAGSTER_HOME": str(root / "dagster"),
           "SHIFTLAKE_SAMPLES_PER_PROBLEM": "2"}
    for var in ("BASE_MODEL", "CHECKPOINTS_URL", "PROBLEMS_URL"):
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-m", "orchestration.app.cli", "demo"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return root, env, out.stdout


def test_demo_runs_every_asset_and_prints_the_summary(demo):
    root, env, stdout = demo
    assert "cached at" in stdout  # the session's small world, not a new one
    for key in KEYS:
        assert key in stdout
    assert "shiftlake sql" in stdout and "wall time per stage" in stdout
    assert (root / "lake" / "token_shifts" / "checkpoint=rl-step-000004" / "data.parquet").exists()
    # it ends by naming each checkpoint's report, which is there
    reports = [line.strip() for line in stdout.strip().splitlines()[-len(KEYS):]]
    assert reports == [str(root / "lake" / "reports" / f"checkpoint={k}" / "report.html") for k in KEYS]
    assert all(Path(r).stat().st_size > 50_000 for r in reports)

    os.environ["DAGSTER_HOME"], saved = env["DAGSTER_HOME"], os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            for asset in ("rollouts", "token_shifts", "summaries", "report"):
                records = instance.fetch_materializations(dg.AssetKey(asset), limit=10).records
                assert sorted(r.partition_key for r in records) == list(KEYS), asset
            assert len(instance.fetch_materializations(dg.AssetKey("base_rollouts"), limit=10).records) == 1
            # figures are drawn once, by the report: all seven on its page, none on the tables' own
            for asset in ("summaries", "trend", "report"):
                record = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records[0]
                drawn = {k for k in record.asset_materialization.metadata if k.startswith("figure")}
                assert drawn == ({f"figure: {f}" for f in FIGURE_NAMES} if asset == "report" else set()), asset
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = saved


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _figures_on_asset_page(page, url: str, names: list[str], screenshot: Path) -> None:
    """Open the asset's page; each figure's Markdown entry opens a dialog whose PNG is drawn."""
    page.goto(url)
    for i, name in enumerate(names):
        row = page.locator("tr", has_text=f"figure: {name}").last
        row.get_by_text("[Show Markdown]").click()
        dialog = page.get_by_role("dialog").filter(has_text=f"figure: {name}")
        image = dialog.locator("img").first
        image.wait_for(state="visible", timeout=30_000)
        assert image.get_attribute("src").startswith("data:image/png;base64,"), name
        assert browser.image_loaded(image), name
        assert dialog.locator("img").first.bounding_box()["width"] > 200, name
        if i == 0:
            page.wait_for_timeout(800)  # the dialog's fade-in, for the picture only
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        dialog.get_by_role("button", name="Close").click()
        dialog.wait_for(state="hidden")


def test_the_ui_shows_the_figures_on_the_report_page(demo):
    root, env, _ = demo
    port = _free_port()
    server = live.start_webserver(env, port, log_file=root / "webserver.log")
    try:
        with browser.page() as page:
            base = f"http://127.0.0.1:{port}"
            shot = SCREENSHOTS / "report-asset-page.png"
            _figures_on_asset_page(page, f"{base}/assets/report", FIGURE_NAMES, shot)
            assert page.get_by_text(KEYS[-1]).first.is_visible()  # the latest materialisation's partition
    finally:
        stop_group(server)
    assert shot.stat().st_size > 20_000
    print(f"screenshot of the report asset page: {shot}")


def test_the_html_report_renders_its_seven_sections(demo):
    root, _, _ = demo
    report = root / "lake" / "reports" / f"checkpoint={KEYS[-1]}" / "report.html"
    with browser.page(height=1200) as page:
        page.goto(report.as_uri())
        sections = page.locator("section")
        assert sections.count() == 7
        for i in range(7):
            section = sections.nth(i)
            assert section.locator("h2").inner_text().startswith(f"{i + 1}. ")
            image = section.locator("img")
            assert image.count() == 1, section.get_attribute("id")
            image.scroll_into_view_if_needed()
            assert browser.image_loaded(image), section.get_attribute("id")
        drill = page.locator("section#token_drilldown")
        marks = drill.locator("mark")
        assert marks.count() > 0 and marks.first.get_attribute("title").startswith("JS ")
        assert drill.locator("table").count() == 3  # one per response
        page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
