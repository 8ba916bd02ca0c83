"""Where shiftlake keeps its local state: $SHIFTLAKE_CACHE, else `.shiftlake/` in the checkout (models fetched
from S3 or merged, the toy world, the demo's Dagster instance). Knows nothing else."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def state_dir() -> Path:
    return Path(os.environ.get("SHIFTLAKE_CACHE") or REPO_ROOT / ".shiftlake")


def models_cache() -> Path:
    """Models fetched from S3 and merged from shards or adapters, one folder per content."""
    return state_dir() / "models"
