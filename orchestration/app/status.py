"""Where each checkpoint stands, and why: analysed, stale, failed, running, waiting, pending or gone.

Read from what is on disk (`compute.checkpoints`), the Dagster instance (partitions, runs, materialisations)
and staleness (`orchestration.automation.staleness`). `shiftlake status` prints it; the sensor logs the same reasons
tick by tick.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from compute.checkpoints import not_ready
from compute.settings import Settings
from orchestration.automation import instance as held
from orchestration.automation.staleness import find_stale

STATES = ("analysed", "stale", "failed", "running", "waiting", "pending", "gone")


@dataclass(frozen=True)
class CheckpointStatus:
    key: str
    state: str  # one of STATES
    detail: str = ""


def checkpoint_status(instance: dg.DagsterInstance, settings: Settings, specs: list[dg.AssetSpec],
                      configured: dict[str, str] | None = None) -> list[CheckpointStatus]:
    """One line per checkpoint found under CHECKPOINTS_URL (and SFT_CHECKPOINTS_URL) or registered as a partition, in order
    (`configured`: the settings recorded as metadata, as `staleness.find_stale` takes them)."""
    found = {c.key: c for c in settings.checkpoints()}
    keys = sorted(set(found) | set(held.partitions(instance)))
    analysed = held.analysed(instance, keys)
    runs = held.last_runs(instance, keys)
    stale = find_stale(instance, specs, settings.required("base_model"), settings.checkpoints_url,
                       configured, settings.sft_checkpoints_url).partitions() if analysed else {}
    out = []
    unwatched = "" if settings.sft_checkpoints_url else "SFT_CHECKPOINTS_URL unset, so its folder is not looked for"
    for key in keys:
        ckpt, run = found.get(key), runs.get(key)
        gone = unwatched if key.startswith("sft-") and unwatched else "folder gone"
        if key in analysed and key in stale:
            out.append(CheckpointStatus(key, "stale", "out of date: " + ", ".join(stale[key])))
        elif key in analysed:
            out.append(CheckpointStatus(key, "analysed", "" if ckpt else f"{gone}; its model is in the lake's store"))
        elif run is not None and run.status == "running":
            out.append(CheckpointStatus(key, "running", "its checkpoint_job run is queued or under way"))
        elif run is not None and run.status == "failed":
            out.append(CheckpointStatus(key, "failed", run.error or "its last run failed; see the run in the UI"))
        elif ckpt is None:
            out.append(CheckpointStatus(key, "gone", f"registered, never analysed: {gone}"))
        elif why := not_ready(ckpt):
            out.append(CheckpointStatus(key, "waiting", why))
        else:
            out.append(CheckpointStatus(key, "pending", f"{ckpt.layout} checkpoint, complete: the sensor requests its "
                                                        "run on a tick when its files are unchanged"))
    return out
