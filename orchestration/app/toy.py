"""The toy world as the default study: each of BASE_MODEL, CHECKPOINTS_URL and PROBLEMS_URL left unset points
at the toy world's folder of that input (`compute.toyworld`, SHIFTLAKE_TOY_WORLD picks which world). With
SHIFTLAKE_TOY_SFT=1 (`shiftlake demo --sft`), an unset SFT_CHECKPOINTS_URL points at the world's SFT run
(`build_sft`), analysed beside the RL run as role sft; with SHIFTLAKE_TOY_AB=1 (`shiftlake demo --ab`), an unset
AB_CURVES_URL points at the curves of the world's A/B of divergence-weighted advantages (`compute.toyworld.ab`,
with the configured divergence, alpha and s). The engine knows nothing of it; the application sets the
environment before anything reads it."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

from compute.settings import env_name, from_env
from compute.toyworld.ab import AB_SEEDS, ab_curves, build_ab
from compute.toyworld.world import build_sft, build_world, world_dir

FOLDERS = {"base_model": "base", "checkpoints_url": "checkpoints", "problems_url": "problems.jsonl"}
SFT_FOLDER = "sft_checkpoints"


def wants(environ: MutableMapping[str, str], variable: str) -> bool:
    """A yes/no switch of the environment (1, true, yes)."""
    return environ.get(variable, "").strip().lower() in ("1", "true", "yes")


def toy_inputs(environ: MutableMapping[str, str] = os.environ, build: bool = False, log=print) -> bool:
    """Point every unset input variable of `environ` at the toy world (trained first with `build`, unless
    cached); True when any was unset."""
    unset = [name for name in FOLDERS if not environ.get(env_name(name))]
    if not unset:
        return False
    folder = build_world(log=log) if build else world_dir()
    for name in unset:
        environ[env_name(name)] = str(folder / FOLDERS[name])
    if wants(environ, "SHIFTLAKE_TOY_SFT") and not environ.get(env_name("sft_checkpoints_url")):
        environ[env_name("sft_checkpoints_url")] = str(build_sft(log=log) if build else folder / SFT_FOLDER)
    if wants(environ, "SHIFTLAKE_TOY_AB") and not environ.get(env_name("ab_curves_url")):
        kind, alpha, s = from_env(environ).advantage()
        curves = build_ab(seeds=AB_SEEDS, kind=kind, alpha=alpha, s=s, log=log) if build else ab_curves(
            folder, AB_SEEDS, kind=kind, alpha=alpha, s=s)
        if curves.exists():  # not built yet (`shiftlake demo --ab` builds it): no curves rather than a missing file
            environ[env_name("ab_curves_url")] = str(curves)
    return True
