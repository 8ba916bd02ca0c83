"""What to study and how: the one configuration, read from the environment once per run (`from_env`), and
the parameters each stage takes derived from it. Knows nothing about Dagster or the toy world.

LAKE_URL         base URL of the lake (default ./lake)
BASE_MODEL       folder of the base model
CHECKPOINTS_URL  folder holding the RL checkpoints
PROBLEMS_URL     jsonl or parquet with prompt/answer
                 (each one unset: the application points it at the toy world, `orchestration.app.toy`)
SFT_CHECKPOINTS_URL  optional: folder of a supervised run's checkpoints, analysed beside the RL run's as role
                 sft (`compute.checkpoints`; checkpoints named sft-* under CHECKPOINTS_URL are sft too)
AB_CURVES_URL    optional: evaluation curves of training runs to compare, e.g. GRPO with and without weighted
                 advantages (`compute.curves`), the lake's `training_curves`
SHIFTLAKE_VERIFIER, SHIFTLAKE_VERIFY_TIMEOUT_S, SHIFTLAKE_VERIFY_WORKERS, SHIFTLAKE_SAMPLES_PER_PROBLEM,
SHIFTLAKE_MAX_PROBLEMS, SHIFTLAKE_TEMPERATURE, SHIFTLAKE_TOP_P, SHIFTLAKE_MAX_NEW_TOKENS, SHIFTLAKE_SEED, SHIFTLAKE_BATCH_SIZE, SHIFTLAKE_CHUNK_TOKENS
SHIFTLAKE_PROMPT_TEMPLATE (raw | chat | a format string with {problem}), SHIFTLAKE_SYSTEM_PROMPT (chat only),
SHIFTLAKE_STOP (stop strings besides the EOS ids, a JSON list): prompts and stops (`compute.prompts`)
SHIFTLAKE_CROSS_*: the cross-sampling sweep (batch size, directions, eps grid per criterion, random
control, divergence on full or sampling distributions); see `Settings`
SHIFTLAKE_ADVANTAGE_DIVERGENCE, _ALPHA, _SCALE: the advantage_weights table's w = 1 + s (sigmoid(alpha D) - 1/2)
SHIFTLAKE_SENSOR_INTERVAL_S, SHIFTLAKE_REANALYSIS_CRON: the checkpoint sensor and the reanalysis schedule
RAY_ADDRESS      optional: a Ray cluster (127.0.0.1:6379, ray://head:10001) that runs the model-bound steps in
                 shards (`compute.raypool`); unset, they run in the run's process. SHIFTLAKE_RAY_WORKERS (0: one per
                 GPU), SHIFTLAKE_RAY_WORKER_GPUS and _CPUS: each worker's share of the cluster
SHIFTLAKE_TORCH_THREADS  torch's threads in a run's process (0: the cores split among the runs going on, taken
                 again at each model-bound step, `compute.sizing.share_threads`)
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING

from compute.storage import resolve_lake_url

if TYPE_CHECKING:
    from compute.checkpoints import Checkpoint
    from compute.cross_sampling import CrossGrid
    from compute.paired import PairedParams
    from compute.prompts import PromptSettings
    from compute.sampling import SamplingParams


@dataclass(frozen=True)
class Settings:
    lake_url: str = field(default_factory=resolve_lake_url)
    base_model: str = ""  # the three inputs: "" until set
    checkpoints_url: str = ""
    problems_url: str = ""
    sft_checkpoints_url: str = ""  # optional: a supervised run's checkpoints (role sft)
    ab_curves_url: str = ""  # optional: an A/B's training curves (compute.curves)
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
    cross_random_seeds: int = 3  # independent coin seeds per random control: its spread shows over them
    advantage_divergence: str = "kl"  # advantage_weights: D_t, one of kl (kl_rl_base) | js | delta_logp
    advantage_alpha: float = 1.0  # w_t = 1 + s (sigmoid(alpha D_t) - 1/2): our defaults; the paper gives none we
    advantage_scale: float = 1.0  # could read (its s is this scale)
    ray_address: str = ""  # where the model-bound steps run: "" in the run's process, else this Ray cluster
    ray_workers: int = 0  # shard workers (0: as many as the cluster has GPUs for)
    ray_worker_gpus: float = 1.0  # each worker's GPUs (0: CPU workers)
    ray_worker_cpus: float = 1.0  # each worker's CPUs, and its torch threads
    torch_threads: int = 0  # torch's threads in a run's process (0: the cores shared among the runs going on)
    sensor_interval_s: int = 30  # how often the checkpoint sensor looks for new checkpoints
    reanalysis_cron: str = "0 3 * * *"  # when the reanalysis schedule brings stale partitions up to date

    def required(self, name: str) -> str:
        """The input `name` (base_model, checkpoints_url, problems_url); unset, one message naming its variable."""
        if not (value := getattr(self, name)):
            raise ValueError(f"{env_name(name)} is not set: point it at the study's {name.removesuffix('_url')} "
                             "(README: A real study), or run `shiftlake demo` for the toy world")
        return value

    def checkpoints(self) -> list[Checkpoint]:
        """The study's checkpoints: the RL run's under CHECKPOINTS_URL and the SFT run's (`compute.checkpoints`)."""
        from compute.checkpoints import discover_checkpoints

        return discover_checkpoints(self.required("checkpoints_url"), self.sft_checkpoints_url)

    def sampling(self) -> SamplingParams:
        from compute.sampling import SamplingParams

        return SamplingParams(self.temperature, self.top_p, self.max_new_tokens)

    def prompts(self) -> PromptSettings:
        """The prompt template and stop strings (`compute.prompts`); a bad setting fails here, with its variable."""
        from compute.prompts import PromptSettings

        return PromptSettings.parse(self.prompt_template, self.system_prompt, self.stop)

    def paired(self) -> PairedParams:
        from compute.paired import PairedParams

        return PairedParams(self.batch_size, self.chunk_tokens)

    def advantage(self) -> tuple[str, float, float]:
        """(divergence kind, alpha, s) of the `advantage_weights` table; a bad kind fails here, naming its variable."""
        from compute.advantages import KINDS

        if self.advantage_divergence not in KINDS:
            raise ValueError(f"{env_name('advantage_divergence')}={self.advantage_divergence!r}: choose one of "
                             f"{', '.join(KINDS)}")
        return self.advantage_divergence, self.advantage_alpha, self.advantage_scale

    def advantage_weighting(self) -> str:
        """How the `advantage_weights` are made, as its asset records it (metadata ADVANTAGE_WEIGHTING)."""
        kind, alpha, s = self.advantage()
        return f"{kind} alpha={alpha:g} s={s:g}"

    def recorded(self) -> dict[str, str]:
        """The settings the assets record as metadata, which staleness compares with these: the prompts' and the
        advantage weighting's (metadata name -> value)."""
        return {**self.prompts().recorded(), ADVANTAGE_WEIGHTING: self.advantage_weighting()}

    def cross_grid(self) -> CrossGrid:
        from compute.cross_sampling import CrossGrid, parse_eps

        eps = tuple((name, parse_eps(getattr(self, f"cross_eps_{name}"), env_name(f"cross_eps_{name}")))
                    for name in ("js", "delta_logp", "entropy"))
        directions = tuple(d for d in self.cross_directions.replace(" ", "").split(",") if d)
        on = tuple((n, e) for n, e in eps if e)
        if not on:
            raise ValueError("every cross-sampling eps grid is empty (SHIFTLAKE_CROSS_EPS_JS, _DELTA_LOGP, _ENTROPY): "
                             "give at least one criterion its thresholds, e.g. SHIFTLAKE_CROSS_EPS_JS=0.01,0.1")
        random_control = bool(self.cross_random_control) and "js" in dict(on)  # it matches the js runs' budgets
        return CrossGrid(directions, on, random_control, self.cross_divergence_on, self.cross_random_seeds)


ADVANTAGE_WEIGHTING = "advantage_weighting"  # the advantage_weights asset's metadata: how its weights were made
ENV = {"lake_url": "LAKE_URL", "base_model": "BASE_MODEL", "checkpoints_url": "CHECKPOINTS_URL",
       "problems_url": "PROBLEMS_URL", "sft_checkpoints_url": "SFT_CHECKPOINTS_URL", "ab_curves_url": "AB_CURVES_URL",
       "ray_address": "RAY_ADDRESS"}


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
