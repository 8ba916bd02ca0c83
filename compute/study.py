"""The study's tables as frames: rollouts of a policy, token shifts of a base/RL pair, scores.

Every function takes loaded models and frames and returns a polars frame whose columns are the lake's
table columns (float32 metrics, int32 ids). Knows nothing about where the frames are stored.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl

from compute.models import LoadedModel
from compute.paired import PairedParams, paired_metrics
from compute.sampling import SamplingParams, sample
from compute.verifiers import Verifier

IDS = pl.List(pl.Int32)


def rollout_seed(seed: int, dataset: str, problem_id: str, sample_idx: int) -> int:
    """The seed of one rollout: the same for every policy, so base and RL draw common random numbers."""
    digest = hashlib.sha256(f"{seed}:{dataset}:{problem_id}:{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 2


def rollouts(policy_model: LoadedModel, problems: pl.DataFrame, checkpoint: str, policy: str,
             samples_per_problem: int, params: SamplingParams, seed: int, batch_size: int) -> pl.DataFrame:
    """`samples_per_problem` sampled responses per problem, batched, each from its own seed."""
    tok = policy_model.tokenizer
    jobs = [(row, k) for row in problems.iter_rows(named=True) for k in range(samples_per_problem)]
    prompt_ids = {(r["dataset"], r["problem_id"]): tok.encode(r["prompt"], add_special_tokens=False)
                  for r in problems.iter_rows(named=True)}
    records = []
    for lo in range(0, len(jobs), batch_size):
        chunk = jobs[lo: lo + batch_size]
        seeds = [rollout_seed(seed, r["dataset"], r["problem_id"], k) for r, k in chunk]
        prompts = [prompt_ids[(r["dataset"], r["problem_id"])] for r, _ in chunk]
        outs = sample(policy_model.model, prompts, seeds, params, tok.eos_token_id, tok.pad_token_id)
        for (r, k), s, p, out in zip(chunk, seeds, prompts, outs):
            records.append({
                "rollout_id": f"{checkpoint}:{policy}:{r['dataset']}:{r['problem_id']}:{k}",
                "checkpoint": checkpoint, "policy": policy, "dataset": r["dataset"],
                "problem_id": r["problem_id"], "sample_idx": k, "seed": s,
                "temperature": params.temperature, "top_p": params.top_p,
                "max_new_tokens": params.max_new_tokens, "prompt_ids": p, "response_ids": out.response_ids,
                "response_text": tok.decode(out.response_ids), "n_tokens": len(out.response_ids),
                "finish_reason": out.finish_reason,
            })
    return pl.DataFrame(records, schema_overrides={
        "sample_idx": pl.Int32, "seed": pl.Int64, "temperature": pl.Float32, "top_p": pl.Float32,
        "max_new_tokens": pl.Int32, "prompt_ids": IDS, "response_ids": IDS, "n_tokens": pl.Int32})


def token_shifts(base: LoadedModel, rl: LoadedModel, rollouts_frame: pl.DataFrame, checkpoint: str,
                 params: PairedParams) -> pl.DataFrame:
    """One row per response token of every rollout: base vs RL next-token distributions at that token."""
    prompts = rollouts_frame["prompt_ids"].to_list()
    responses = rollouts_frame["response_ids"].to_list()
    cols = paired_metrics(base.model, rl.model, prompts, responses, base.tokenizer.pad_token_id, params)
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


def scores(rollouts_frame: pl.DataFrame, problems: pl.DataFrame, verifier: Verifier) -> pl.DataFrame:
    """One verdict per rollout, from `verifier` against the problem's reference answer."""
    answers = dict(zip(zip(problems["dataset"], problems["problem_id"]), problems["answer"]))
    records = []
    for r in rollouts_frame.select("rollout_id", "checkpoint", "policy", "dataset", "problem_id",
                                   "response_text").iter_rows(named=True):
        verdict = verifier.judge(r["response_text"], answers[(r["dataset"], r["problem_id"])])
        records.append({"rollout_id": r["rollout_id"], "checkpoint": r["checkpoint"], "policy": r["policy"],
                        "dataset": r["dataset"], "problem_id": r["problem_id"], "verifier": verifier.name,
                        "verifier_version": verifier.version, "extracted_answer": verdict.extracted_answer,
                        "correct": verdict.correct})
    return pl.DataFrame(records, schema_overrides={"extracted_answer": pl.String})
