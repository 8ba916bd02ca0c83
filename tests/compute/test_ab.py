"""The A/B harness of divergence-weighted advantages on the small world: arm `grpo` is the world's own GRPO run,
arm `grpo_weighted` differs from it by the weighting alone, and the curves file is what the lake's input reads."""

import json

import polars as pl
import pytest
import torch
from transformers import AutoModelForCausalLM

from compute.advantages import divergence, weighted_advantages
from compute.curves import load_curves
from compute.toyworld.ab import evaluate, weighting
from compute.toyworld.tokenizer import build_tokenizer
from compute.toyworld.train import grpo
from compute.toyworld.world import SMALL
from compute.verifiers import toy_reward


def _load(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def test_the_curves_hold_every_arm_seed_step_and_problem(small_world, small_ab):
    curves = load_curves(str(small_ab))
    problems = [json.loads(line) for line in (small_world / "problems.jsonl").read_text().splitlines()]
    assert curves.height == 2 * 2 * 3 * len(problems)  # arms x seeds x steps (0, 2, 4) x problems
    assert set(curves["arm"]) == {"grpo", "grpo_weighted"} and set(curves["seed"]) == {0, 1}
    assert set(curves["step"]) == {0, 2, 4} and set(curves["n"]) == {2}
    start = curves.filter(pl.col("step") == 0).group_by("arm", "seed").agg(pl.col("correct").sort_by("problem_id"))
    lists = start["correct"].to_list()
    assert lists.count(lists[0]) == 4  # the same base, scored with the same seeds


def test_arm_grpo_is_the_worlds_own_run(small_world, small_ab):
    """Seed 0 of arm grpo trains with the world's seeds: its last evaluation is the world's last checkpoint's."""
    problems = [json.loads(line) for line in (small_world / "problems.jsonl").read_text().splitlines()]
    last = _load(small_world / "checkpoints" / f"checkpoint-{SMALL.rl_steps}").eval()
    expected = evaluate(last, build_tokenizer(), problems, 2, SMALL.max_new_tokens)
    got = load_curves(str(small_ab)).filter(arm="grpo", seed=0, step=SMALL.rl_steps).sort("problem_id")
    assert got["correct"].to_list() == expected


def _train(small_world, hook) -> dict:
    model = _load(small_world / "base")
    rewards = grpo(model, build_tokenizer(), toy_reward, 2, SMALL.rl_prompts, SMALL.rl_group, SMALL.rl_lr,
                   SMALL.seed + 1, SMALL.max_new_tokens, SMALL.width, lambda step: None, 2, hook)
    assert 0 < rewards[0] < 1  # some right, some wrong: advantages that are not all zero
    return model.state_dict()


def test_the_weighted_arm_differs_by_the_weighting_alone(small_world):
    """s = 0 makes every weight 1: the same updates as plain GRPO, bit for bit; s = 1 changes them. The hook's
    weights are the trainer function's on the base's logits at the same positions."""
    base = _load(small_world / "base").eval()
    plain = _train(small_world, None)
    flat = _train(small_world, weighting(base, "kl", alpha=1.0, s=0.0))
    weighted = _train(small_world, weighting(base, "kl", alpha=1.0, s=1.0))
    untrained = _load(small_world / "base").state_dict()
    assert any(not torch.equal(plain[k], untrained[k]) for k in plain)  # the runs did learn something
    assert all(torch.equal(plain[k], flat[k]) for k in plain)
    assert any(not torch.equal(plain[k], weighted[k]) for k in plain)
    policy = _load(small_world / "checkpoints" / "checkpoint-4").eval()
    ids = torch.tensor([[1, 5, 6, 7, 8, 9], [1, 9, 8, 7, 6, 5]])
    attention = torch.ones_like(ids)
    logits = policy(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    advantages = torch.tensor([[1.0] * 5, [-2.0] * 5])
    got = weighting(base, "kl", alpha=2.0, s=0.5)(advantages, ids, attention, logits)
    d = divergence(logits, base(input_ids=ids, attention_mask=attention).logits[:, :-1].float())
    assert torch.allclose(got, weighted_advantages(advantages, d, alpha=2.0, s=0.5))
    assert (got[0] >= 1.0).all() and (got[1] <= -2.0).all()  # KL >= 0: weights >= 1 scale both signs up


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop("n"), "lacks the columns n"),
    (lambda f: f.with_columns(pl.col("n") - 5), "correct outside 0..n"),
    (lambda f: pl.concat([f, f.head(1)]), "1 rows repeat an arm, seed, step and problem"),
    (lambda f: f.with_columns(pl.lit("x").alias("step")), "a column has values of the wrong kind"),
    (lambda f: f.filter(~((pl.col("arm") == "grpo_weighted") & (pl.col("seed") == 1) & (pl.col("step") == 4))),
     "every arm and step must cover the same seeds and problems, and 8 combinations are missing, e.g. "
     "{'arm': 'grpo_weighted', 'step': 4, 'seed': 1"),
])
def test_a_bad_curves_file_gets_one_message_naming_the_fix(small_ab, tmp_path, change, message):
    path = tmp_path / "curves.parquet"
    change(pl.read_parquet(small_ab)).write_parquet(path)
    with pytest.raises(ValueError, match=message) as e:
        load_curves(str(path))
    assert "AB_CURVES_URL=" in str(e.value) and "problem_id, n, correct" in str(e.value)


def test_curves_are_read_from_jsonl_and_csv_too(small_ab, tmp_path):
    frame = pl.read_parquet(small_ab)
    frame.drop("dataset").write_ndjson(tmp_path / "runs.jsonl")
    frame.write_csv(tmp_path / "runs.csv")
    assert load_curves(str(tmp_path / "runs.jsonl"))["dataset"].unique().to_list() == ["runs"]
    assert load_curves(str(tmp_path / "runs.csv")).equals(load_curves(str(small_ab)))
    with pytest.raises(ValueError, match="a .parquet, .jsonl or .csv file is expected"):
        load_curves(str(tmp_path / "runs.txt"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_curves(str(tmp_path / "gone.parquet"))
