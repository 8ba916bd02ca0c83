"""Running the study live: the Dagster daemon (alone, or with the webserver through `dagster dev`) on the
code location as a child process, and `shiftlake demo --live`, where the toy GRPO run writes checkpoints
while the sensor picks them up.

Used by the live demo, the sensor-latency benchmark and the end-to-end sensor test, so all three watch the
same thing: a checkpoint folder appears, the sensor registers it, a run analyses it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from assets.trend import trend
from compute import lakesql
from compute.checkpoints import discover_checkpoints
from compute.paths import live_dir
from compute.toyworld.world import build_world
from compute.processes import stop_group as stop
from orchestration.app import toy
from orchestration.app.demo import ensure_dagster_home
from orchestration.app.location import CODE_LOCATION
from orchestration.automation.instance import ANALYSED_BY, materialised_at


def start_daemon(env: dict[str, str], ui: bool = False, log_file: Path | None = None) -> subprocess.Popen:
    """`dagster-daemon run` (or `dagster dev` with `ui`) on the code location, in its own process group; inputs
    left unset in `env` are the toy world's."""
    env = dict(env)
    toy.toy_inputs(env)
    bin_dir = Path(sys.executable).parent
    cmd = ([str(bin_dir / "dagster"), "dev", "-m", CODE_LOCATION] if ui
           else [str(bin_dir / "dagster-daemon"), "run", "-m", CODE_LOCATION])
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_webserver(env: dict[str, str], port: int, log_file: Path | None = None,
                    timeout: float = 120.0) -> subprocess.Popen:
    """`dagster-webserver` alone on the code location (no daemon), in its own process group; returns once it
    answers on http://127.0.0.1:`port`; inputs left unset in `env` are the toy world's."""
    env = dict(env)
    toy.toy_inputs(env)
    cmd = [str(Path(sys.executable).parent / "dagster-webserver"), "-m", CODE_LOCATION, "-h", "127.0.0.1",
           "-p", str(port)]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_answering(process, port, log_file, timeout)
    return process


def wait_answering(process: subprocess.Popen, port: int, log_file: Path | None, timeout: float) -> None:
    """Return once the Dagster webserver `process` started answers on http://127.0.0.1:`port`; if it exits or
    does not answer within `timeout` s, stop its process group and raise."""
    import urllib.request

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"the Dagster webserver exited with {process.returncode} (log: {log_file})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(answers, timeout, every=0.5, what=f"the Dagster webserver answering on port {port}")
    except BaseException:
        stop(process)
        raise


def wait_for(condition: Callable[[], object], timeout: float, every: float = 1.0, what: str = "condition"):
    """Poll `condition` until it returns something truthy; raise TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def live_paths(root: Path | None = None) -> dict[str, Path]:
    """The live demo's own checkpoint folder, lake and instance (under $SHIFTLAKE_LIVE_DIR if set)."""
    root = root or live_dir()
    return {"root": root, "checkpoints": root / "checkpoints", "lake": root / "lake", "dagster": root / "dagster"}


def run_live(log=print, ui: bool = True, timeout_s: float = 1800.0, root: Path | None = None) -> dict[str, float]:
    """`shiftlake demo --live`: the toy GRPO run writes checkpoints into an empty folder while the Dagster
    daemon (and UI) runs; the checkpoint sensor registers each one and a run analyses it. Prints, per
    checkpoint, the seconds from its folder appearing to its summaries being queryable; returns them."""
    build_world(log=log)
    paths = live_paths(root)
    shutil.rmtree(paths["root"], ignore_errors=True)
    paths["checkpoints"].mkdir(parents=True)
    env = {**os.environ, "CHECKPOINTS_URL": str(paths["checkpoints"]), "LAKE_URL": str(paths["lake"]),
           "DAGSTER_HOME": str(paths["dagster"])}
    env.setdefault("SHIFTLAKE_SENSOR_INTERVAL_S", "5")
    for var in ("BASE_MODEL", "PROBLEMS_URL"):  # the toy world's, to match its GRPO run
        env.pop(var, None)
    toy.toy_inputs(env)
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    ensure_dagster_home()
    with dg.DagsterInstance.get():  # create the instance's databases before other processes open them
        pass
    writer = subprocess.Popen([sys.executable, "-m", "compute.toyworld.grpo_writer", str(paths["checkpoints"])], env=env,
                              start_new_session=True)
    daemon = start_daemon(env, ui=ui, log_file=paths["root"] / "dagster.log")
    log(f"toy GRPO writing into {paths['checkpoints']}; Dagster {'UI on http://127.0.0.1:3000 and ' if ui else ''}"
        f"daemon running (log: {paths['root'] / 'dagster.log'}); sensor every {env['SHIFTLAKE_SENSOR_INTERVAL_S']} s")
    appeared: dict[str, float] = {}
    latency: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    try:
        with dg.DagsterInstance.get() as instance:
            while time.monotonic() < deadline:
                for c in discover_checkpoints(paths["checkpoints"]):
                    appeared.setdefault(c.key, time.time())
                for key, t in appeared.items():
                    done = [materialised_at(instance, a, key) for a in ANALYSED_BY]
                    if key not in latency and all(done):
                        latency[key] = max(done) - t
                        log(f"{key}: summaries queryable {latency[key]:.0f} s after its folder appeared")
                trend_at = materialised_at(instance, trend.key.to_user_string())
                if (writer.poll() is not None and appeared and len(latency) == len(appeared)
                        and trend_at and trend_at >= max(appeared.values())):
                    break
                time.sleep(2)
            else:
                raise TimeoutError(f"the live demo did not finish within {timeout_s:.0f} s; see {paths['root']}")
    finally:
        stop(daemon)
        stop(writer)
    log("")
    log(lakesql.render(lakesql.run(lakesql.query_text("checkpoint_trend"), str(paths["lake"]))))
    log(f"live lake: {paths['lake']}    DAGSTER_HOME: {paths['dagster']}")
    return latency
