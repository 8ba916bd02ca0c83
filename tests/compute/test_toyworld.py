"""The toy world: the task's strings, its verifier, and folders that load like real checkpoints."""

import json
import random
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from compute.toyworld.task import Noise, eval_problems, prompt_for, random_operands, sft_response, worked_solution
from compute.toyworld.tokenizer import VOCAB, build_tokenizer, char_encoder
from compute.toyworld.train import length_buckets, new_model, response_logprobs, response_loss
from compute.toyworld.world import SMALL, WORLDS, build_world, named_config, world_dir
from compute.verifiers import judge_toy_addition
from orchestration.app.cli import TOY_WORLDS


def test_worked_solution_matches_the_documented_example():
    assert prompt_for(3471, 2856) == "^3471+2856="
    assert worked_solution(3471, 2856) == ":1+6=7,7+5=12,4+8+1=13,3+2+1=6;6327$"
    assert worked_solution(9999, 1) == ":9+1=10,9+0+1=10,9+0+1=10,9+0+1=10;10000$"


def test_noisy_sft_targets_make_the_three_documented_mistakes():
    """With every mistake certain: a direct guess; or dropped carries and a dropped final carry."""
    rng = random.Random(0)
    assert sft_response(3471, 2856, rng, Noise(1.0, 0.0, 0.0)) == "#6327$"
    assert worked_solution(9999, 1, rng, Noise(0.0, 1.0, 0.0)) == ":9+1=10,9+0=9,9+0=9,9+0=9;9990$"
    assert worked_solution(9999, 1, rng, Noise(0.0, 0.0, 1.0)) == ":9+1=10,9+0+1=10,9+0+1=10,9+0+1=10;0000$"


@pytest.mark.parametrize("response, answer, extracted, correct", [
    (":1+6=7,7+5=12,4+8+1=13,3+2+1=6;6327$", "6327", "6327", True),   # worked answer
    ("#6327$", "6327", "6327", True),                                  # direct guess
    (":9+1=10,9+0+1=10,9+0+1=10,9+0+1=10;0000$", "10000", "0000", False),  # dropped final carry
    (";0046$", "46", "0046", True),                                    # zero-padded digits, same number
    (":1+6=7,7+5=12", "6327", None, False),                            # cut off before '$'
    ("$", "1", None, False),                                           # nothing before the end
    ("#12$#13$", "12", "12", True),                                    # only text up to the first '$'
])
def test_toy_verifier(response, answer, extracted, correct):
    v = judge_toy_addition(response, answer)
    assert (v.extracted_answer, v.correct) == (extracted, correct)


def test_eval_split_is_deterministic_and_well_formed():
    a, b = eval_problems(20, seed=3), eval_problems(20, seed=3)
    assert a == b and len({r["problem_id"] for r in a}) == 20
    for r in a:
        x, y = int(r["prompt"][1:5]), int(r["prompt"][6:10])
        assert int(r["answer"]) == x + y and len(r["prompt"]) == 11


def test_saved_world_loads_through_the_auto_classes(small_world):
    """Guards the Qwen2 pitfall: AutoTokenizer must give back the 19-id character tokenizer with its own
    pre-tokenizer and decoder, not a model-type tokenizer that silently re-tokenises."""
    for folder in [small_world / "base", *sorted((small_world / "checkpoints").iterdir())]:
        tok = AutoTokenizer.from_pretrained(folder)
        assert len(tok) == len(VOCAB) == 19
        assert tok.get_vocab() == build_tokenizer().get_vocab()
        assert "<pad>|." in str(tok.backend_tokenizer.pre_tokenizer)
        text = ":1+6=7,7+5=12,4+8+1=13,3+2+1=6;6327$"
        ids = tok.encode(text, add_special_tokens=False)
        assert len(ids) == len(text) and tok.decode(ids) == text
        model = AutoModelForCausalLM.from_pretrained(folder)
        assert model.config.vocab_size == 19 and model.config.tie_word_embeddings


def test_world_is_cached_by_config_hash(small_world, world_root):
    """A second build of the same config returns the same folder without training again."""
    before = (small_world / "world.json").stat().st_mtime_ns
    assert build_world(SMALL, root=world_root, log=lambda *_: None) == small_world
    assert (small_world / "world.json").stat().st_mtime_ns == before
    report = json.loads((small_world / "world.json").read_text())
    assert report["digest"] == SMALL.digest() == small_world.name
    steps = sorted(int(p.name.split("-")[1]) for p in (small_world / "checkpoints").iterdir())
    assert steps == [2, 4]


HOLD_THE_BUILD = """
import shutil, sys, time
from pathlib import Path
from compute.toyworld.world import building
target = Path(sys.argv[2])
with building(target):
    print("building", flush=True)
    time.sleep(2)
    shutil.copytree(sys.argv[1], target)
"""


def test_a_second_builder_waits_for_the_first_and_finds_the_world_cached(small_world, tmp_path):
    """Two processes asking for the same world (two demos, or two test workers): the second says that it waits on
    the build lock while the first builds, then returns the first's world without training it again."""
    target = world_dir(SMALL, tmp_path)
    first = subprocess.Popen([sys.executable, "-c", HOLD_THE_BUILD, str(small_world), str(target)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "building"
        said = []
        assert build_world(SMALL, root=tmp_path, log=said.append) == target
        assert first.wait(timeout=60) == 0
        assert said == [f"waiting for another process that is building {target}",
                        f"toy world {SMALL.digest()} cached at {target}"]
        assert not target.with_name(target.name + ".partial").exists()
    finally:
        first.kill()
        first.wait()


def test_the_emergent_worlds_sft_data_is_exact():
    """No planted mistakes: every SFT target of the emergent world is an exact answer (worked or direct), so
    whatever its base gets wrong comes from training; the other worlds keep their hash (and cache)."""
    config = named_config("emergent")
    rng, direct = random.Random(0), 0
    for _ in range(2000):
        a, b = random_operands(rng, config.width)
        target = sft_response(a, b, rng, config.noise, config.width)
        assert target in (worked_solution(a, b), f"#{a + b}$")
        assert judge_toy_addition(target, str(a + b)).correct
        direct += target.startswith("#")
    assert 900 < direct < 1100  # both strategies, about half each
    assert named_config("default").digest() == "6ee2c7c8d739" and SMALL.digest() == "e3f4b649818b"
    assert len({w.digest() for w in WORLDS.values()}) == len(WORLDS)
    assert set(TOY_WORLDS) == set(WORLDS)  # the CLI's --world choices
    with pytest.raises(ValueError, match="emergent"):
        named_config("hard")


def test_the_training_loops_character_encoder_is_the_tokenizers_encoding():
    """SFT and GRPO encode their generated prompts and responses with `char_encoder` (the fast tokenizer's
    per-call overhead was a tenth of an SFT step); the world must stay what the tokenizer would give, noise and
    all, so a cached world keeps its digest."""
    import random

    from compute.toyworld.tokenizer import char_encoder

    tok, rng = build_tokenizer(), random.Random(0)
    encode = char_encoder(tok)
    for width, noise in ((4, Noise()), (2, Noise(direct_guess=0.5, dropped_carry=0.3))):
        texts = [t for a, b in (random_operands(rng, width) for _ in range(300))
                 for t in (prompt_for(a, b, width), sft_response(a, b, rng, noise, width))]
        assert [encode(t) for t in texts] == [tok.encode(t, add_special_tokens=False) for t in texts]
    assert encode("?x") == tok.encode("?x", add_special_tokens=False)  # unknown characters: the pad id, as the tokenizer


def test_length_buckets_cover_every_row_once_in_runs_of_sorted_lengths():
    rng = random.Random(0)
    lengths = [rng.choice([17, 18]) for _ in range(150)] + [rng.randrange(45, 53) for _ in range(100)]
    rng.shuffle(lengths)
    groups = length_buckets(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    spans = [(min(lengths[i] for i in g), max(lengths[i] for i in g)) for g in groups]
    assert all(hi < lo for (_, hi), (lo, _) in zip(spans, spans[1:]))  # each group a run of the sorted lengths
    assert len(groups) >= 2 and spans[0][1] <= 18 <= 45 <= spans[-1][0]  # the short answers apart from the long
    padded = sum(len(g) * hi for g, (_, hi) in zip(groups, spans))
    assert padded < 0.7 * len(lengths) * max(lengths)
    assert length_buckets([30] * 64) == [list(range(64))]  # nothing to save: one pass
    assert length_buckets([5, 6, 7, 8]) == [[0, 1, 2, 3]]  # a cut would cost more than the padding it saves


@pytest.mark.parametrize("weighted", [False, True])
def test_the_bucketed_loss_is_the_one_padded_batchs(weighted):
    """response_loss (one pass per length bucket) equals the loss of one right-padded batch, gradients too, with
    and without GRPO's advantages and a per-token hook that reads the logits."""
    tok = build_tokenizer()
    rng, encode = random.Random(3), char_encoder(tok)
    pairs = [random_operands(rng, 4) for _ in range(40)]
    prompts = [encode(prompt_for(a, b, 4)) for a, b in pairs]
    responses = [encode(sft_response(a, b, rng, Noise(), 4)) for a, b in pairs]
    assert len(length_buckets([len(p) + len(r) for p, r in zip(prompts, responses)])) >= 2
    model = new_model(32, 2, 4, 64, seed=1)
    advantages = torch.randn(40, generator=torch.Generator().manual_seed(0)) if weighted else None
    hook = (lambda per_token, ids, attention, logits: per_token * logits.softmax(-1).amax(-1).detach()) if weighted \
        else None

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    bucketed = response_loss(model, prompts, responses, tok.pad_token_id, advantages, hook)
    g_bucketed = grads(bucketed)
    logp, mask, inputs = response_logprobs(model, prompts, responses, tok.pad_token_id, with_inputs=True)
    per_token = advantages.unsqueeze(1).expand_as(logp) if weighted else torch.ones_like(logp)
    if weighted:
        per_token = hook(per_token, *inputs)
    one = -(logp * mask * per_token).sum() / mask.sum()
    g_one = grads(one)
    torch.testing.assert_close(bucketed, one, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_bucketed, g_one):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
