"""Inputs: checkpoint discovery and naming, tokenizer checks, problems files."""

import json
import shutil

import polars as pl
import pytest
from transformers import AutoTokenizer

from compute.checkpoints import checkpoint_key, discover_checkpoints
from compute.models import TokenizerMismatch, check_same_tokenizer
from compute.problems import load_problems


def test_discovers_trainer_verl_and_plain_layouts(small_world, tmp_path):
    src = small_world / "checkpoints" / "checkpoint-2"
    shutil.copytree(src, tmp_path / "checkpoint-200")
    shutil.copytree(src, tmp_path / "global_step_50" / "actor" / "huggingface")
    shutil.copytree(src, tmp_path / "my final model")
    (tmp_path / "half-written").mkdir()
    (tmp_path / "half-written" / "config.json").write_text("{}")  # no weights: not a checkpoint
    found = discover_checkpoints(tmp_path)
    assert [(c.key, c.step) for c in found] == [
        ("rl-step-000050", 50), ("rl-step-000200", 200), ("rl-my-final-model", None)]
    assert found[0].uri.endswith("global_step_50/actor/huggingface")


@pytest.mark.parametrize("name, key", [
    ("../../etc", "rl-etc"), ("a/b c", "rl-a-b-c"), ("modèle-ü", "rl-modele-u"), ("...", "rl-unnamed")])
def test_keys_are_safe_partition_names(name, key):
    assert checkpoint_key(name, None) == key


def test_missing_checkpoint_folder_names_the_variable(tmp_path):
    with pytest.raises(FileNotFoundError, match="CHECKPOINTS_URL"):
        discover_checkpoints(tmp_path / "nope")
    tmp_path.joinpath("rl").mkdir()  # an SFT folder the SFT trainer has not created yet holds no checkpoint
    assert discover_checkpoints(tmp_path / "rl", str(tmp_path / "nope")) == []


def test_sft_checkpoints_get_their_role_from_their_folder_or_their_name(small_world, tmp_path):
    src = small_world / "checkpoints" / "checkpoint-2"
    for folder in ("rl/checkpoint-100", "rl/sft-checkpoint-50", "rl/SFT_final", "sft/global_step_100", "sft/last"):
        shutil.copytree(src, tmp_path / folder)
    found = discover_checkpoints(str(tmp_path / "rl"), str(tmp_path / "sft"))
    assert [(c.key, c.role, c.step) for c in found] == [
        ("rl-step-000100", "rl", 100), ("sft-step-000050", "sft", 50), ("sft-step-000100", "sft", 100),
        ("sft-final", "sft", None), ("sft-last", "sft", None)]
    shutil.copytree(src, tmp_path / "sft" / "checkpoint-50")  # the same step twice: one message, both folders
    with pytest.raises(ValueError, match="two checkpoint folders would both be sft-step-000050: .*sft-checkpoint-50 "
                                         "and .*sft/checkpoint-50"):
        discover_checkpoints(str(tmp_path / "rl"), str(tmp_path / "sft"))


def test_tokenizer_mismatch_names_both_paths(small_world, tmp_path):
    base = AutoTokenizer.from_pretrained(small_world / "base")
    other = AutoTokenizer.from_pretrained(small_world / "base")
    other.add_tokens(["<extra>"])
    check_same_tokenizer("a", base, "b", AutoTokenizer.from_pretrained(small_world / "base"))
    with pytest.raises(TokenizerMismatch, match=r"vocabulary.*/base/a.*/ckpt/b"):
        check_same_tokenizer("/base/a", base, "/ckpt/b", other)
    same_vocab = AutoTokenizer.from_pretrained(small_world / "base")
    same_vocab.eos_token = same_vocab.convert_ids_to_tokens(5)  # same ids, another end of sequence
    with pytest.raises(TokenizerMismatch, match=r"special tokens.*/base/a.*/ckpt/c"):
        check_same_tokenizer("/base/a", base, "/ckpt/c", same_vocab)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_problems_from_jsonl_and_parquet(tmp_path):
    rows = [{"prompt": "1+1=", "answer": "2"}, {"prompt": "2+2=", "answer": "4"}]
    frame = load_problems(_jsonl(tmp_path / "math.jsonl", rows))
    assert frame.columns == ["dataset", "problem_id", "prompt", "answer"]
    assert frame["problem_id"].to_list() == ["0", "1"] and frame["dataset"][0] == "math"
    pl.DataFrame(rows).write_parquet(tmp_path / "m.parquet")
    assert load_problems(str(tmp_path / "m.parquet"), max_problems=1).height == 1


@pytest.mark.parametrize("rows, message", [
    ([{"prompt": "1+1="}], "lacks column"),
    ([], "is empty"),
    ([{"problem_id": "a", "prompt": "x", "answer": "1"}, {"problem_id": "a", "prompt": "y", "answer": "2"}], "repeats"),
    ([{"prompt": "", "answer": "1"}], "empty prompt"),
])
def test_bad_problems_files_get_one_clear_error(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        load_problems(_jsonl(tmp_path / "bad.jsonl", rows))
