"""Shards (`compute.shards`): cut into whole batches, a stage's tables come out identical row for row whatever the
number of workers. Run here by a pool that serves shards in this process as a cluster's workers would (each a
separate call with its own slice); the Ray pool itself runs in tests/cluster."""

from __future__ import annotations

import polars as pl
import pytest

from compute import stages, tables
from compute.models import load_model
from compute.settings import Settings
from compute.shards import LOCAL, slices


class Workers:
    """`compute.shards.Pool` with `workers` workers, serving the shards one after another here."""

    def __init__(self, workers: int):
        self.workers, self.shards = workers, []

    def call(self, fn, models, *args):
        return fn(*models, *args)

    def map(self, fn, models, shards):
        self.shards.append(len(shards))
        return [fn(*models, *shard) for shard in shards]


def test_slices_are_whole_batches_covering_every_job_once():
    assert slices(0, 8, 4) == []
    assert slices(100, 8, 1) == [(0, 100)]
    for n, rows, workers in [(100, 8, 2), (100, 8, 40), (7, 8, 3), (1000, 3, 5), (64, 16, 4)]:
        got = slices(n, rows, workers)
        assert got[0][0] == 0 and got[-1][1] == n and all(a[1] == b[0] for a, b in zip(got, got[1:]))
        assert all(lo % rows == 0 for lo, _ in got)  # every shard starts on a batch boundary
        batches = -(-n // rows)
        assert len(got) == min(batches, workers * 4)  # 4 shards per worker, at most one per batch
        sizes = [-(-(hi - lo) // rows) for lo, hi in got]  # in batches
        assert max(sizes) - min(sizes) <= 1  # spread evenly


@pytest.fixture(scope="module")
def pair(small_world):
    checkpoint = sorted((small_world / "checkpoints").iterdir())[-1]
    return load_model(small_world / "base"), load_model(checkpoint)


@pytest.fixture(scope="module")
def problems(small_world):
    from compute.problems import load_problems

    return load_problems(str(small_world / "problems.jsonl"), 6)


def test_sharded_stages_equal_the_single_process_tables(pair, problems):
    """Rollouts, token shifts and cross samples (its random controls' budgets from every shard's js runs) from 3
    workers equal the tables of one, frame for frame."""
    base, rl = pair
    cfg = Settings(samples_per_problem=3, max_new_tokens=24, cross_eps_js="0.01,inf", cross_eps_delta_logp="",
                   cross_eps_entropy="1", cross_random_seeds=2)
    args = (cfg.samples_per_problem, cfg.sampling(), cfg.seed, 4, cfg.prompts())
    three = Workers(3)
    for pool in (LOCAL, three):
        got = {
            "rollouts": tables.rollouts(rl, problems, "c", "rl", *args, pool=pool),
            "cross": tables.cross_samples(base, rl, problems, "c", cfg.cross_grid(), *args, pool=pool),
        }
        got["shifts"] = tables.token_shifts(base, rl, got["rollouts"], "c", cfg.paired().__class__(4, 16), pool=pool)
        if pool is LOCAL:
            want = got
    # batches of 4: 18 rollouts (5 shards); 18 x 6 lockstep rules (27 batches: 12 shards of 2 or 3), then 18 x 8
    # random (2 directions x 2 eps x 2 coins: 36 batches, 12 shards); 18 paired passes (5)
    assert three.shards == [5, 12, 12, 5]
    for name in want:
        assert want[name].height > 0
        assert got[name].equals(want[name]), name


def test_lockstep_batches_count_prompt_seed_pairs_up_to_a_row_limit():
    keys = ["a", "a", "b", "b", "c", "c", "c", "d"]
    assert stages.pair_batches(keys, 2, 100) == [(0, 4), (4, 8)]
    assert stages.pair_batches(keys, 1, 100) == [(0, 2), (2, 4), (4, 7), (7, 8)]
    assert stages.pair_batches(keys, 4, 3) == [(0, 3), (3, 6), (6, 8)]  # the row limit cuts inside a pair
    assert stages.pair_batches([], 4, 3) == []


def test_a_cpu_lockstep_batch_holds_whole_samples_and_the_frame_does_not_depend_on_it(pair, problems, monkeypatch):
    """On a CPU rows of one prompt and seed share their decoding until their tokens differ, so a batch takes `rows`
    samples with every rule of each (run 1: 2 directions x (2 js eps + 1 entropy eps); run 2, the random control: 2
    directions x 2 eps x 2 coins); the frame is the same for 1, 3 or all samples per batch."""
    base, rl = pair
    cfg = Settings(samples_per_problem=2, max_new_tokens=24, cross_eps_js="0.01,inf", cross_eps_delta_logp="",
                   cross_eps_entropy="1", cross_random_seeds=2)
    sizes, real = [], stages.cross_sample
    monkeypatch.setattr(stages, "cross_sample", lambda b, r, prompts, *a: sizes.append(len(prompts)) or real(b, r, prompts, *a))
    frames = {}
    for rows in (1, 3, 0):
        sizes.clear()
        frames[rows] = tables.cross_samples(base, rl, problems, "c", cfg.cross_grid(), cfg.samples_per_problem,
                                            cfg.sampling(), cfg.seed, rows, cfg.prompts())
        samples = problems.height * cfg.samples_per_problem
        per_batch = {1: 1, 3: 3, 0: samples}[rows]
        assert sizes == [6 * per_batch] * (samples // per_batch) + [8 * per_batch] * (samples // per_batch), rows
    assert frames[1].height == samples * 14
    assert frames[3].equals(frames[1]) and frames[0].equals(frames[1])


def test_a_shard_of_empty_responses_adds_no_token_rows(pair, problems):
    base, rl = pair
    frame = tables.rollouts(rl, problems, "c", "rl", 2, Settings(max_new_tokens=8).sampling(), 1, 4)
    emptied = frame.with_columns(pl.when(pl.int_range(pl.len()) < 4).then(pl.lit([], pl.List(pl.Int32)))
                                 .otherwise(pl.col("response_ids")).alias("response_ids"))
    shifts = tables.token_shifts(base, rl, emptied, "c", Settings().paired().__class__(4, 16), pool=Workers(3))
    assert shifts.height == sum(len(r) for r in emptied["response_ids"].to_list()[4:])
    assert set(shifts["rollout_id"]) == set(emptied["rollout_id"].to_list()[4:]) - {
        r["rollout_id"] for r in emptied.iter_rows(named=True) if not r["response_ids"]}
