"""The study's tables as frames: rollouts of a policy, token shifts of a base/RL pair, scores, advantage weights.

Every function takes loaded models and frames and returns a polars frame whose columns are the lake's
table columns (float32 metrics, int32 ids). Knows nothing about where the frames are stored. The functions that
run models import `compute.stages` (torch, transformers) themselves: the code location imports this module."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from compute.models import LoadedModel
from compute.prompts import PromptSettings, PromptTemplate
from compute.shards import LOCAL, Pool, slices
from compute.verifiers import verifier_for

if TYPE_CHECKING:
    from compute.cross_sampling import CrossGrid, SwitchRule
    from compute.paired import PairedParams
    from compute.sampling import SamplingParams

IDS = pl.List(pl.Int32)


def rollout_seed(seed: int, dataset: str, problem_id: str, sample_idx: int) -> int:
    """The seed of one rollout: the same for every policy, so base and RL draw common random numbers."""
    digest = hashlib.sha256(f"{seed}:{dataset}:{problem_id}:{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


def content_version(frame: pl.DataFrame) -> str:
    """A data version for a sampled table: sha256 of its Arrow IPC bytes, so a rerun that wrote other rows
    (another prompt template, stop strings, weights) gives another version and what read it becomes stale."""
    return hashlib.sha256(frame.write_ipc(None, compression="uncompressed").getvalue()).hexdigest()


def _rendered(template: PromptTemplate, tokenizer, problem_rows: list[dict]) -> dict[tuple[str, str], tuple]:
    """(dataset, problem_id) -> (prompt text, prompt ids)."""
    return {(r["dataset"], r["problem_id"]): template.render(tokenizer, r["prompt"]) for r in problem_rows}


def rollouts(policy_model: LoadedModel, problems: pl.DataFrame, checkpoint: str, policy: str,
             samples_per_problem: int, params: SamplingParams, seed: int, batch_size: int,
             prompting: PromptSettings = PromptSettings(), pool: Pool = LOCAL) -> pl.DataFrame:
    """`samples_per_problem` sampled responses per problem, batched (`batch_size` rows; 0: as many as fit,
    `compute.sizing.rows_per_batch`), each from its own seed; prompts rendered by `prompting.template` with the
    policy's tokenizer, responses ended by its EOS ids and the stop strings. `pool` runs the batches
    (`compute.shards`: here, or shards on a Ray cluster; the same rows either way)."""
    from compute import stages
    tok = policy_model.tokenizer
    problem_rows = list(problems.iter_rows(named=True))
    jobs = [(row, k) for row in problem_rows for k in range(samples_per_problem)]
    prompt = _rendered(prompting.template, tok, problem_rows)
    template_hash = prompting.template.hash(tok)
    width = max((len(ids) for _, ids in prompt.values()), default=1)
    rows = batch_size or pool.call(stages.batch_rows, [policy_model], width, params.max_new_tokens)
    seeds = [rollout_seed(seed, r["dataset"], r["problem_id"], k) for r, k in jobs]
    prompts = [prompt[(r["dataset"], r["problem_id"])] for r, _ in jobs]
    outs = stages.sharded(pool, stages.sampled, [policy_model], rows, [[ids for _, ids in prompts], seeds],
                          (params, prompting.stop_strings))
    records = []
    for (r, k), s, (text, ids), out in zip(jobs, seeds, prompts, outs):
        records.append({
            "rollout_id": f"{checkpoint}:{policy}:{r['dataset']}:{r['problem_id']}:{k}",
            "checkpoint": checkpoint, "policy": policy, "dataset": r["dataset"],
            "problem_id": r["problem_id"], "sample_idx": k, "seed": s,
            "temperature": params.temperature, "top_p": params.top_p,
            "max_new_tokens": params.max_new_tokens, "template_hash": template_hash, "prompt_text": text,
            "prompt_ids": ids, "response_ids": out.response_ids,
            "response_text": tok.decode(out.response_ids), "n_tokens": len(out.response_ids),
            "finish_reason": out.finish_reason, "stop": out.stop,
        })
    return pl.DataFrame(records, schema_overrides={
        "sample_idx": pl.Int32, "seed": pl.Int64, "temperature": pl.Float32, "top_p": pl.Float32,
        "max_new_tokens": pl.Int32, "template_hash": pl.String, "prompt_text": pl.String, "prompt_ids": IDS,
        "response_ids": IDS, "n_tokens": pl.Int32, "stop": pl.String})


CROSS_KEYS = ("cross_sample_id", "checkpoint", "direction", "criterion", "eps", "dataset", "problem_id")


def cross_samples(base: LoadedModel, rl: LoadedModel, problems: pl.DataFrame, checkpoint: str, grid: CrossGrid,
                  samples_per_problem: int, params: SamplingParams, seed: int, batch_size: int,
                  prompting: PromptSettings = PromptSettings(), pool: Pool = LOCAL) -> pl.DataFrame:
    """Lockstep base/RL responses for every rule of `grid` x problem x sample, from the rollouts' seeds.

    Prompts are rendered with the base's tokenizer (the RL model's has the same vocabulary); a response ends
    at an EOS id of either model or a stop string. The js, delta_logp and entropy runs come first; each random
    control then switches with the share of tokens its js run switched (same direction and eps), on the same
    problems and seeds, once per coin seed of the grid (column `coin`: 0 on every other rule). `batch_size`
    rows are decoded at once (0: as many as fit, `compute.sizing.rows_per_batch`); `pool` runs the batches
    (`compute.shards`)."""
    from compute import stages
    tok = base.tokenizer
    problem_rows = list(problems.iter_rows(named=True))
    prompt_ids = {key: ids for key, (_, ids) in _rendered(prompting.template, tok, problem_rows).items()}
    template_hash = prompting.template.hash(tok)
    rows = batch_size or pool.call(stages.batch_rows, [base, rl], max(map(len, prompt_ids.values()), default=1),
                                   params.max_new_tokens)

    def run(rules: list[SwitchRule]) -> list[dict]:
        jobs = [(rule, r, k) for rule in rules for r in problem_rows for k in range(samples_per_problem)]
        seeds = [rollout_seed(seed, r["dataset"], r["problem_id"], k) for _, r, k in jobs]
        prompts = [prompt_ids[(r["dataset"], r["problem_id"])] for _, r, _ in jobs]
        # decoded sample by sample (every rule of a problem's sample in one batch: they share their decoding
        # until their tokens differ, `cross_sampling.cross_sample`), recorded rule by rule
        order = sorted(range(len(jobs)), key=lambda i: i % (len(problem_rows) * samples_per_problem))
        decoded = stages.sharded(pool, stages.lockstep, [base, rl], rows,
                                 [[prompts[i] for i in order], [seeds[i] for i in order], [jobs[i][0] for i in order]],
                                 (params, prompting.stop_strings, grid.divergence_on))
        outs = [None] * len(jobs)
        for i, out in zip(order, decoded):
            outs[i] = out
        records, texts = [], {}  # rules often agree on a sample's response: each distinct one is decoded once
        for (rule, r, k), s, out in zip(jobs, seeds, outs):
            ids = tuple(out.response_ids)
            if ids not in texts:
                texts[ids] = tok.decode(out.response_ids)
            records.append({
                "cross_sample_id": f"{checkpoint}:{rule.direction}:{rule.criterion}:{rule.eps:g}"
                                   f"{f'~coin{rule.coin}' if rule.coin else ''}:"
                                   f"{r['dataset']}:{r['problem_id']}:{k}",
                "checkpoint": checkpoint, "direction": rule.direction, "criterion": rule.criterion,
                "eps": rule.eps, "switch_prob": rule.switch_prob, "coin": rule.coin,
                "divergence_on": grid.divergence_on,
                "dataset": r["dataset"], "problem_id": r["problem_id"], "sample_idx": k, "seed": s,
                "temperature": params.temperature, "top_p": params.top_p,
                "max_new_tokens": params.max_new_tokens, "template_hash": template_hash,
                "response_ids": out.response_ids,
                "response_text": texts[ids], "n_tokens": len(out.response_ids),
                "n_switched": len(out.switched_positions), "switched_positions": out.switched_positions,
                "finish_reason": out.finish_reason, "stop": out.stop,
            })
        return records

    records = run(grid.rules())
    switched, total = {}, {}
    for rec in records:
        if rec["criterion"] == "js":
            key = (rec["direction"], rec["eps"])
            switched[key] = switched.get(key, 0) + rec["n_switched"]
            total[key] = total.get(key, 0) + rec["n_tokens"]
    records += run(grid.random_rules({key: switched[key] / max(total[key], 1) for key in total}))
    return pl.DataFrame(records, schema_overrides={
        "eps": pl.Float64, "switch_prob": pl.Float64, "coin": pl.Int32, "sample_idx": pl.Int32, "seed": pl.Int64,
        "temperature": pl.Float32, "top_p": pl.Float32, "max_new_tokens": pl.Int32, "template_hash": pl.String,
        "response_ids": IDS, "n_tokens": pl.Int32, "n_switched": pl.Int32, "switched_positions": IDS,
        "stop": pl.String})


def token_shifts(base: LoadedModel, rl: LoadedModel, rollouts_frame: pl.DataFrame, checkpoint: str,
                 params: PairedParams, pool: Pool = LOCAL) -> pl.DataFrame:
    """One row per response token of every rollout: base vs RL next-token distributions at that token (`pool`
    runs the passes, `compute.shards`)."""
    from compute import stages
    prompts = rollouts_frame["prompt_ids"].to_list()
    responses = rollouts_frame["response_ids"].to_list()
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses)]
    rows = params.batch_size or pool.call(stages.pass_rows, [base], lengths)
    spans = slices(len(prompts), rows, pool.workers)
    parts = pool.map(stages.paired, [base, rl], [(prompts[lo:hi], responses[lo:hi], params, rows) for lo, hi in spans])
    parts = [(lo, part) for (lo, _), part in zip(spans, parts) if part]  # a shard of empty responses has no tokens
    cols = {name: np.concatenate([part[name] + (lo if name == "row" else 0) for lo, part in parts])
            for name in (parts[0][1] if parts else {})}
    rows = cols.pop("row")
    n_tokens = rollouts_frame["n_tokens"].to_numpy()[rows]
    vocab = base.tokenizer.convert_ids_to_tokens(list(range(len(base.tokenizer))))
    lists = {name: cols.pop(name) for name in [c for c in cols if cols[c].ndim == 2]}
    position = cols.pop("position")
    token_id = cols.pop("token_id")
    return pl.DataFrame({
        "rollout_id": rollouts_frame["rollout_id"].to_numpy()[rows],
        "checkpoint": np.full(len(rows), checkpoint),
        "policy": rollouts_frame["policy"].to_numpy()[rows],
        "position": position,
        "rel_position": (position / np.maximum(n_tokens, 1)).astype(np.float32),
        "token_id": token_id,
        "token_text": np.array([vocab[i] if 0 <= i < len(vocab) else "" for i in token_id], dtype=object),
        **cols,
        **{name: pl.Series(name, arr).cast(pl.List(pl.Int32 if arr.dtype == np.int32 else pl.Float32))
           for name, arr in lists.items()},
    })


ROLLOUT_KEYS = ("rollout_id", "checkpoint", "policy", "dataset", "problem_id")


def scores(frame: pl.DataFrame, problems: pl.DataFrame, verifiers: str, keys: tuple[str, ...] = ROLLOUT_KEYS,
           timeout_s: float = 5.0, workers: int = 2) -> pl.DataFrame:
    """One verdict per response of `frame` (rollouts or cross samples; `keys` columns carried over), from the
    verifier that `verifiers` (a spec, `compute.verifiers.verifier_for`) picks for its dataset."""
    answers = dict(zip(zip(problems["dataset"], problems["problem_id"]), problems["answer"]))
    parts = []
    for (dataset,), group in frame.group_by("dataset", maintain_order=True):
        verifier = verifier_for(verifiers, dataset)
        pairs = [(text, answers[(dataset, pid)]) for text, pid in zip(group["response_text"], group["problem_id"])]
        verdicts = verifier.judge_all(pairs, timeout_s=timeout_s, workers=workers)
        parts.append(group.select(keys).with_columns(
            pl.lit(verifier.name).alias("verifier"), pl.lit(verifier.version).alias("verifier_version"),
            pl.Series("extracted_answer", [v.extracted_answer for v in verdicts], pl.String),
            pl.Series("correct", [v.correct for v in verdicts], pl.Boolean),
            pl.Series("reason", [v.reason for v in verdicts], pl.String),
            pl.Series("extraction", [v.extraction for v in verdicts], pl.String)))
    if not parts:
        return frame.select(keys).with_columns(
            verifier=pl.lit(None, pl.String), verifier_version=pl.lit(None, pl.String),
            extracted_answer=pl.lit(None, pl.String), correct=pl.lit(None, pl.Boolean), reason=pl.lit(None, pl.String),
            extraction=pl.lit(None, pl.String))
    return pl.concat(parts)


IDENTITY_PROBLEMS = 4  # problems (every sample of each) the never-switch identity is checked on


def never_switch_identity(base: LoadedModel, rl: LoadedModel, problems: pl.DataFrame, checkpoint: str,
                          base_rollouts: pl.DataFrame, rl_rollouts: pl.DataFrame, grid: CrossGrid,
                          samples_per_problem: int, params: SamplingParams, seed: int, batch_size: int,
                          prompting: PromptSettings = PromptSettings(), pool: Pool = LOCAL) -> tuple[bool, dict]:
    """Does lockstep cross-sampling with a js rule that never switches (eps = +inf) reproduce, token for
    token, the primary's own rollouts: the base's (forward) and the checkpoint's (reverse)? Decoded afresh on
    the first IDENTITY_PROBLEMS problems by id, whatever the grid holds; returns (passed, what was compared)."""
    from compute.cross_sampling import CrossGrid
    sample = problems.sort("dataset", "problem_id").head(IDENTITY_PROBLEMS)
    never = CrossGrid(tuple(d for d in ("forward", "reverse") if d in grid.directions) or ("forward",),
                      (("js", (float("inf"),)),), random_control=False, divergence_on=grid.divergence_on)
    cross = cross_samples(base, rl, sample, checkpoint, never, samples_per_problem, params, seed, batch_size,
                          prompting, pool)
    keys = ["dataset", "problem_id", "sample_idx"]
    metadata, mismatched = {}, []
    for direction, own in (("forward", base_rollouts), ("reverse", rl_rollouts)):
        got = cross.filter(pl.col("direction") == direction)
        if not got.height:
            continue
        joined = got.join(own.select(*keys, pl.col("response_ids").alias("own")), on=keys, how="left")
        same = [a is not None and list(a) == list(b) for a, b in zip(joined["own"], joined["response_ids"])]
        mismatched += [f"{direction} {r['problem_id']}#{r['sample_idx']}"
                       for r, ok in zip(joined.iter_rows(named=True), same) if not ok]
        metadata[f"{direction}: responses identical"] = f"{sum(same)} of {len(same)}"
    metadata["not identical"] = ", ".join(mismatched[:20]) or "none"
    return not mismatched and bool(metadata), metadata



def advantage_weights(token_shifts: pl.DataFrame, kind: str, alpha: float, s: float) -> pl.DataFrame:
    """One row per token of the checkpoint's own rollouts (policy rl): the divergence-weighted advantage's token
    weight w = 1 + s (sigmoid(alpha D) - 1/2) (`compute.advantages.token_weights`), D the token_shifts column of
    `kind`. A trainer joins it to its rollouts on (rollout_id, position)."""
    import torch

    from compute.advantages import LAKE_COLUMNS, token_weights

    own = token_shifts.filter(pl.col("policy") == "rl").sort("rollout_id", "position")
    d = own[LAKE_COLUMNS[kind]].cast(pl.Float32)
    weights = token_weights(torch.from_numpy(d.to_numpy().copy()), alpha, s).numpy()
    return own.select("rollout_id", "checkpoint", "position", "token_id").with_columns(
        pl.lit(kind).alias("divergence"), d.alias("d"), pl.Series("weight", weights, dtype=pl.Float32),
        pl.lit(alpha, pl.Float32).alias("alpha"), pl.lit(s, pl.Float32).alias("s"))
