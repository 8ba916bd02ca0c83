"""`shiftlake demo --sft --ab` end to end on the small world: a real persistent Dagster instance, a fresh lake,
the RL run's checkpoints beside the toy SFT run's, the A/B's curves, the summary and the reports' paths printed, one successful materialisation per asset and checkpoint in
the event log; then the Dagster UI on that instance and the HTML report, both in headless Chromium."""

import os
import shutil
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
from tests.procs import descendants, processes

KEYS = ("rl-step-000002", "rl-step-000004", "sft-step-000004")  # the SFT run saves every other RL step
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
    out = subprocess.run([sys.executable, "-m", "orchestration.app.cli", "demo", "--sft", "--ab"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return root, env, out.stdout


def test_demo_runs_every_asset_and_prints_the_summary(demo):
    root, env, stdout = demo
    assert "cached at" in stdout  # the session's small world, not a new one
    for key in KEYS:
        assert key in stdout
    assert "shiftlake sql" in stdout and "wall time per stage" in stdout
    assert "RL against SFT at the same steps" in stdout and "A/B: GRPO with and without" in stdout
    assert "grpo_weighted" in stdout
    assert (root / "lake" / "token_shifts" / "checkpoint=rl-step-000004" / "data.parquet").exists()
    # it ends by naming each checkpoint's report, which is there
    reports = [line.strip() for line in stdout.strip().splitlines()[-len(KEYS):]]
    assert reports == [str(root / "lake" / "reports" / f"checkpoint={k}" / "report.html") for k in KEYS]
    assert all(Path(r).stat().st_size > 50_000 for r in reports)

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        for asset in ("rollouts", "token_shifts", "summaries", "report"):
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=10).records
            assert sorted(r.partition_key for r in records) == list(KEYS), asset
        assert len(instance.fetch_materializations(dg.AssetKey("base_rollouts"), limit=10).records) == 1
        # figures are drawn once, by the report: all eight on its page, none on the tables' own
        for asset in ("summaries", "trend", "report"):
            record = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records[0]
            drawn = {k for k in record.asset_materialization.metadata if k.startswith("figure")}
            assert drawn == ({f"figure: {f}" for f in FIGURE_NAMES} if asset == "report" else set()), asset


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


def test_the_html_report_renders_its_eight_sections(demo):
    root, _, _ = demo
    report = root / "lake" / "reports" / f"checkpoint={KEYS[-1]}" / "report.html"
    with browser.page(height=1200) as page:
        page.goto(report.as_uri())
        sections = page.locator("section")
        assert sections.count() == len(FIGURE_NAMES) == 8
        for i in range(8):
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


def _ui(env: dict, root: Path, port: int) -> subprocess.Popen:
    """`shiftlake ui -p PORT -h 127.0.0.1` (webserver and daemon) on `env`'s instance, answering."""
    log = open(root / "ui.log", "ab")
    ui = subprocess.Popen([sys.executable, "-m", "orchestration.app.cli", "ui", "-p", str(port), "-h", "127.0.0.1"],
                          env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    live.wait_answering(ui, port, root / "ui.log", timeout=240)
    return ui


def _timeline_rows(page, base: str, rows: tuple[str, ...]) -> str:
    """The Overview timeline's text once each of `rows` is drawn (its rows arrive as their runs load)."""
    page.goto(f"{base}/overview/activity/timeline")
    for row in rows:
        page.get_by_text(row, exact=True).first.wait_for(timeout=90_000)
    return page.inner_text("main") if page.locator("main").count() else page.inner_text("body")


def test_materialising_one_checkpoint_from_the_asset_page(demo, tmp_path):
    """The researcher's path in the UI, on a copy of the demo's instance and lake: the Overview shows the demo's
    runs under their jobs; Catalog -> scores -> Materialize -> one checkpoint -> Launch runs it to success with
    both checks, rewrites only that checkpoint's file, and the run shows in the Overview and the run history."""
    root, env, _ = demo
    shutil.copytree(root / "dagster", tmp_path / "dagster")
    shutil.copytree(root / "lake", tmp_path / "lake", symlinks=True)
    env = {**env, "DAGSTER_HOME": str(tmp_path / "dagster"), "LAKE_URL": str(tmp_path / "lake"),
           "SHIFTLAKE_SENSOR_INTERVAL_S": "5"}
    files = {k: tmp_path / "lake" / "scores" / f"checkpoint={k}" / "data.parquet" for k in KEYS}
    before = {k: f.stat().st_mtime_ns for k, f in files.items()}
    shots = SCREENSHOTS / "materialize"
    shots.mkdir(parents=True, exist_ok=True)
    port, key = _free_port(), KEYS[0]
    base = f"http://127.0.0.1:{port}"
    ui = _ui(env, tmp_path, port)
    try:
        with browser.page() as page:
            jobs = ("base_job", "checkpoint_job", "trend_job", "report_job")  # the demo's runs, by job
            timeline = _timeline_rows(page, base, jobs)
            assert "No runs" not in timeline
            page.screenshot(path=str(shots / "1-overview-after-demo.png"))

            page.goto(f"{base}/assets/scores")
            page.get_by_role("button", name="Materialize…").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_text("Select a partition or create one").click()
            page.screenshot(path=str(shots / "2-materialize-dialog.png"))
            page.get_by_text(key, exact=True).locator("visible=true").first.click()
            page.keyboard.press("Escape")
            page.screenshot(path=str(shots / "3-one-partition-picked.png"))
            dialog.get_by_role("button", name="Launch 1 run").click()
            page.get_by_text("Launched run").wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "4-launched.png"))

            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                def ended():
                    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/from_ui": "true"}))
                    return runs[0] if runs and runs[0].is_finished else None

                run = live.wait_for(ended, timeout=300, every=2, what="the run launched from the UI ending")
                checks = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            assert run.status == dg.DagsterRunStatus.SUCCESS, run.status
            assert run.tags["dagster/partition"] == key and run.asset_selection == {dg.AssetKey("scores")}
            assert sorted(c.dagster_event.event_specific_data.check_name for c in checks) == ["gx_suite", "invariants"]
            assert all(c.dagster_event.event_specific_data.passed for c in checks)

            # every process the run started ended with it: what stays under the code server is Dagster's
            # resource tracker (the server's own: it starts one the first time it launches a run)
            servers = live.wait_for(lambda: {p for p, c in descendants(ui.pid).items() if " api grpc" in c},
                                    timeout=30, what="the code server")
            under = lambda: {p: c for s in servers for p, c in descendants(s).items()}  # noqa: E731
            live.wait_for(lambda: all("resource_tracker" in c for c in under().values()), timeout=60,
                          what=f"the run's processes ending (left: {under()})")
            assert all(processes()[p][0] in servers for p in under())

            page.goto(f"{base}/runs/{run.run_id}")
            page.get_by_text("invariants").first.wait_for(timeout=60_000)
            page.screenshot(path=str(shots / "5-run-log.png"))
            page.goto(f"{base}/runs")
            page.get_by_text(run.run_id[:8]).first.wait_for(timeout=60_000)  # in the run history
            # Dagster's row for runs from an asset page, beside the jobs' rows
            _timeline_rows(page, base, ("Jobless asset materializations", *jobs))
            page.screenshot(path=str(shots / "6-overview-after-launch.png"))
    finally:
        stop_group(ui)
    after = {k: f.stat().st_mtime_ns for k, f in files.items()}
    assert after[key] != before[key]  # that checkpoint's file was written again
    assert {k: v for k, v in after.items() if k != key} == {k: v for k, v in before.items() if k != key}
    print(f"screenshots of each step: {shots}")
