"""The model-bound work of the study's stages as a worker runs it on one shard of whole batches (`compute.shards`):
sampling, lockstep cross-sampling and the paired pass, each from the models as loaded where it runs (stop ids from
their generation configs, batch sizes from their device). `compute.tables` cuts the jobs and assembles the frames.
"""

from __future__ import annotations

import dataclasses

from compute.cross_sampling import SwitchRule, cross_sample, shares_decoding
from compute.models import LoadedModel
from compute.paired import PairedParams, paired_metrics, sequences_per_pass
from compute.prompts import Stops, stop_ids
from compute.sampling import SamplingParams, sample
from compute.shards import Pool, slices
from compute.sizing import memory_rows, rows_per_batch


def sampled(model: LoadedModel, prompts: list[list[int]], seeds: list[int], params: SamplingParams,
            stop_strings: tuple[str, ...], rows: int):
    """One shard of rollouts, `rows` at a time (run where the model is: `compute.shards`)."""
    tok = model.tokenizer
    stops = Stops(stop_ids(model.generation_config, tok), stop_strings, tok)
    return [out for lo in range(0, len(prompts), rows)
            for out in sample(model.model, prompts[lo: lo + rows], seeds[lo: lo + rows], params, stops,
                              tok.pad_token_id)]


def batch_rows(*models_and_sizes) -> int:
    """Rows per batch for models as loaded where they run (`compute.sizing.rows_per_batch`): `(*models, prompt
    width, new tokens)`."""
    *models, width, new_tokens = models_and_sizes
    return rows_per_batch([m.model for m in models], width, new_tokens)


def sharded(pool: Pool, fn, models: list[LoadedModel], rows: int, columns: list[list], shared: tuple) -> list:
    """`fn(*models, *one slice of each column, *shared, rows)` over shards of whole batches of `rows` jobs (the
    columns: one entry per job), the results concatenated in job order."""
    shards = [(*(c[lo:hi] for c in columns), *shared, rows) for lo, hi in slices(len(columns[0]), rows, pool.workers)]
    return [out for part in pool.map(fn, models, shards) for out in part]


def lockstep(base: LoadedModel, rl: LoadedModel, prompts: list[list[int]], seeds: list[int],
             rules: list[SwitchRule], params: SamplingParams, stop_strings: tuple[str, ...], divergence_on: str,
             rows: int):
    """One shard of lockstep responses, `rows` at a time (run where the models are: `compute.shards`); a response
    ends at an EOS id of either model or a stop string.

    Where rows with the same prompt and seed share one decoding state until their tokens differ (on a CPU:
    `cross_sampling.shares_decoding`), a batch is `rows` distinct prompt-seed pairs with all their rows instead, as
    many rows as would fit in memory were none shared (`compute.sizing.memory_rows`): a step costs what its states
    do, and a sample's rules decoded together share the most."""
    tok = base.tokenizer
    stops = Stops(stop_ids(base.generation_config, tok) | stop_ids(rl.generation_config, rl.tokenizer),
                  stop_strings, tok)
    if shares_decoding(base.model, rl.model) and prompts:
        most = memory_rows([base.model, rl.model], max(map(len, prompts)), params.max_new_tokens)
        cuts = pair_batches(list(zip(map(tuple, prompts), seeds)), rows, max(rows, most))
    else:
        cuts = [(lo, min(lo + rows, len(prompts))) for lo in range(0, len(prompts), rows)]
    return [out for lo, hi in cuts
            for out in cross_sample(base.model, rl.model, prompts[lo:hi], seeds[lo:hi], rules[lo:hi], params, stops,
                                    tok.pad_token_id, divergence_on)]


def pair_batches(keys: list, pairs: int, most: int) -> list[tuple[int, int]]:
    """Consecutive (lo, hi) batches of `keys` (one per row), each with at most `pairs` distinct keys and `most` rows."""
    cuts, seen, lo = [], set(), 0
    for i, key in enumerate(keys):
        if (key not in seen and len(seen) == pairs) or i - lo == most:
            cuts.append((lo, i))
            lo, seen = i, set()
        seen.add(key)
    return cuts + [(lo, len(keys))] if keys else cuts


def paired(base: LoadedModel, rl: LoadedModel, prompts: list[list[int]], responses: list[list[int]],
           params: PairedParams, rows: int) -> dict:
    """One shard of the paired pass, `rows` sequences at a time (run where the models are)."""
    return paired_metrics(base.model, rl.model, prompts, responses, base.tokenizer.pad_token_id,
                          dataclasses.replace(params, batch_size=rows))


def pass_rows(base: LoadedModel, lengths: list[int]) -> int:
    """Sequences per paired pass for the base as loaded where it runs."""
    return sequences_per_pass(lengths, next(base.model.parameters()).device)
