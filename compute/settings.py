"""What to study, read from the environment; every default points at the toy world.

LAKE_URL         base URL of the lake (default ./lake)
BASE_MODEL       folder of the base model (default: the toy world's base)
CHECKPOINTS_URL  folder holding the RL checkpoints (default: the toy world's checkpoints)
PROBLEMS_URL     jsonl or parquet with prompt/answer (default: the toy world's evaluation split)
SHIFTLAKE_VERIFIER, SHIFTLAKE_VERIFY_TIMEOUT_S, SHIFTLAKE_VERIFY_WORKERS, SHIFTLAKE_SAMPLES_PER_PROBLEM,
SHIFTLAKE_MAX_PROBLEMS, SHIFTLAKE_TEMPERATURE, SHIFTLAKE_TOP_P, SHIFTLAKE_MAX_NEW_TOKENS, SHIFTLAKE_SEED, SHIFTLAKE_BATCH_SIZE, SHIFTLAKE_CHUNK_TOKENS
SHIFTLAKE_PROMPT_TEMPLATE (raw | chat | a format string with {problem}), SHIFTLAKE_SYSTEM_PROMPT (chat only),
SHIFTLAKE_STOP (stop strings besides the EOS ids, a JSON list): prompts and stops (`compute.prompts`)
SHIFTLAKE_CROSS_*: the cross-sampling sweep (batch size, directions, eps grid per criterion, random
control, divergence on full or sampling distributions); see `Settings`
SHIFTLAKE_SENSOR_INTERVAL_S, SHIFTLAKE_REANALYSIS_CRON: the checkpoint sensor and the reanalysis schedule
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields

from compute.lake import resolve_lake_url
from compute.toyworld.world import world_dir


def _toy(sub: str) -> str:
    return str(world_dir() / sub)


@dataclass(frozen=True)
class Settings:
    lake_url: str = field(default_factory=resolve_lake_url)
    base_model: str = field(default_factory=lambda: _toy("base"))
    checkpoints_url: str = field(default_factory=lambda: _toy("checkpoints"))
    problems_url: str = field(default_factory=lambda: _toy("problems.jsonl"))
    verifier: str = "toy_addition"  # a name, or per dataset: "math500=math_verify,*=toy_addition"
    verify_timeout_s: float = 5.0
    verify_workers: int = 2
    samples_per_problem: int = 8
    max_problems: int = 0  # 0 = all
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    prompt_template: str = "raw"  # raw | chat (the tokenizer's chat template) | a format string with {problem}
    system_prompt: str = ""  # chat only: the system message ("" = none)
    stop: str = ""  # stop strings besides the EOS ids: a JSON list, e.g. ["</answer>"] ("" = none)
    seed: int = 1234
    batch_size: int = 0  # rows sampled at once, and sequences per paired pass (0: as many as fit, compute.sizing)
    chunk_tokens: int = 2048
    cross_batch_size: int = 0  # rows decoded in lockstep at once (two KV caches each; 0: as many as fit)
    cross_directions: str = "forward,reverse"
    cross_eps_js: str = "0.001,0.003,0.01,0.03,0.1,0.15,0.2,0.3"  # nats; empty turns a criterion off
    cross_eps_delta_logp: str = "0.5,0.75,1,2"
    cross_eps_entropy: str = "0.1,0.3,1"
    cross_random_control: int = 1  # 1: a random control at each js run's budget (none when js is off)
    cross_divergence_on: str = "full"  # full | sampling (after temperature and top-p)
    sensor_interval_s: int = 30  # how often the checkpoint sensor looks for new checkpoints
    reanalysis_cron: str = "0 3 * * *"  # when the reanalysis schedule brings stale partitions up to date


ENV = {"lake_url": "LAKE_URL", "base_model": "BASE_MODEL", "checkpoints_url": "CHECKPOINTS_URL",
       "problems_url": "PROBLEMS_URL"}


def env_name(name: str) -> str:
    return ENV.get(name, f"SHIFTLAKE_{name.upper()}")


EMPTY_IS_A_VALUE = ("cross_eps_js", "cross_eps_delta_logp", "cross_eps_entropy")  # set but empty: criterion off


def from_env(environ=os.environ) -> Settings:
    """Settings with each field taken from its environment variable when set (an empty variable counts as
    unset, except for the eps grids, where it turns the criterion off)."""
    values = {}
    for f in fields(Settings):
        raw = environ.get(env_name(f.name))
        if raw is None or (raw == "" and f.name not in EMPTY_IS_A_VALUE):
            continue
        kind = str if f.default is MISSING else type(f.default)
        try:
            values[f.name] = kind(raw) if kind in (int, float) else raw
        except ValueError:
            raise ValueError(f"{env_name(f.name)}={raw!r} is not a valid {kind.__name__}") from None
    if "lake_url" in values:
        values["lake_url"] = resolve_lake_url(values["lake_url"])
    return Settings(**values)
