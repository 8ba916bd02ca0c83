"""Running the study live: the Dagster daemon (alone, or with the webserver through `dagster dev`) as a
child process, and reading from the instance when a checkpoint's analysis landed.

Used by `shiftlake demo --live`, the sensor-latency benchmark and the end-to-end sensor test, so all three
watch the same thing: a checkpoint folder appears, the sensor registers it, a run analyses it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

CODE_LOCATION = "orchestration.definitions"


def start_daemon(env: dict[str, str], ui: bool = False, log_file: Path | None = None) -> subprocess.Popen:
    """`dagster-daemon run` (or `dagster dev` with `ui`) on the code location, in its own process group."""
    bin_dir = Path(sys.executable).parent
    cmd = ([str(bin_dir / "dagster"), "dev", "-m", CODE_LOCATION] if ui
           else [str(bin_dir / "dagster-daemon"), "run", "-m", CODE_LOCATION])
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def start_webserver(env: dict[str, str], port: int, log_file: Path | None = None,
                    timeout: float = 120.0) -> subprocess.Popen:
    """`dagster-webserver` alone on the code location (no daemon), in its own process group; returns once it
    answers on http://127.0.0.1:`port`."""
    import urllib.request

    cmd = [str(Path(sys.executable).parent / "dagster-webserver"), "-m", CODE_LOCATION, "-h", "127.0.0.1",
           "-p", str(port)]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {process.returncode} (log: {log_file})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(answers, timeout, every=0.5, what=f"dagster-webserver answering on port {port}")
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen, timeout: float = 60.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def wait_for(condition: Callable[[], object], timeout: float, every: float = 1.0, what: str = "condition"):
    """Poll `condition` until it returns something truthy; raise TimeoutError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


def materialised_at(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> float | None:
    """Timestamp of the latest materialisation of an asset (partition), or None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None),
        limit=1).records
    return records[0].timestamp if records else None


def materialisation_counts(instance: dg.DagsterInstance, assets: list[str], partition: str | None) -> dict[str, int]:
    """How many times each asset (partition) was materialised so far."""
    counts = {}
    for asset in assets:
        f = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None)
        counts[asset] = len(instance.fetch_materializations(f, limit=10_000).records)
    return counts
