"""Where shiftlake keeps its local state, each place named once:

    SHIFTLAKE_CACHE      models fetched from S3 or merged, the toy world (default `.shiftlake/` in the checkout)
    DAGSTER_HOME         the Dagster instance of the demo and the UI (default `.shiftlake/dagster/`)
    SHIFTLAKE_LIVE_DIR   the live demo's checkpoints, lake and instance (default `.shiftlake/live/`)

Knows nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL = REPO_ROOT / ".shiftlake"


def state_dir() -> Path:
    return Path(os.environ.get("SHIFTLAKE_CACHE") or LOCAL)


def models_cache() -> Path:
    """Models fetched from S3 and merged from shards or adapters, one folder per content."""
    return state_dir() / "models"


def dagster_home() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or LOCAL / "dagster")


def live_dir() -> Path:
    return Path(os.environ.get("SHIFTLAKE_LIVE_DIR") or LOCAL / "live")
