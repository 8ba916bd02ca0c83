"""The toy world as the default study: each of BASE_MODEL, CHECKPOINTS_URL and PROBLEMS_URL left unset points
at the toy world's folder of that input (`compute.toyworld`, SHIFTLAKE_TOY_WORLD picks which world). The
engine knows nothing of it; the application sets the environment before anything reads it."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from compute.settings import env_name
from compute.toyworld.world import build_world, world_dir

FOLDERS = {"base_model": "base", "checkpoints_url": "checkpoints", "problems_url": "problems.jsonl"}


def toy_inputs(environ: MutableMapping[str, str] = os.environ, build: bool = False, log=print) -> bool:
    """Point every unset input variable of `environ` at the toy world (trained first with `build`, unless
    cached); True when any was unset."""
    unset = [name for name in FOLDERS if not environ.get(env_name(name))]
    if not unset:
        return False
    folder = build_world(log=log) if build else world_dir()
    for name in unset:
        environ[env_name(name)] = str(folder / FOLDERS[name])
    return True
