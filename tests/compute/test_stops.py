"""Stops: every EOS id of the generation config ends a response, a stop string ends it at the token that
completed it (as Hugging Face's StopStringCriteria decides), and the stop reason is recorded, without losing
what the seeded per-row generators guarantee: a row's tokens depend on its own seed and prompt only."""

import math
import string
from types import SimpleNamespace

import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import GenerationConfig, PreTrainedTokenizerFast, StopStringCriteria

from compute.cross_sampling import SwitchRule, cross_sample
from compute.prompts import Ends, Stops, stop_ids
from compute.reencoding import ReencodingDecoder
from compute.sampling import SamplingParams, sample
from tests.compute.test_paired import tiny_model
from tests.compute.test_prompts import chat_tokenizer, tiny_lm

EOS, PAD = 3, 0


@pytest.mark.parametrize("listed,tokenizer_eos,expect", [
    (151643, 151643, {151643}),                  # Qwen2.5 base: one id, the tokenizer's too
    ([151645, 151643], 151645, {151645, 151643}),  # Qwen2.5 instruct: <|im_end|> and <|endoftext|>
    (None, 18, {18}),                            # no generation config entry: the tokenizer's EOS
    (7, None, {7}),                              # no tokenizer EOS: the generation config's
])
def test_stop_ids_are_every_eos_of_the_generation_config_and_the_tokenizer(listed, tokenizer_eos, expect):
    tok = SimpleNamespace(eos_token_id=tokenizer_eos, name_or_path="m")
    assert stop_ids(GenerationConfig(eos_token_id=listed), tok) == expect


def test_no_eos_anywhere_is_an_error():
    with pytest.raises(ValueError, match="names an EOS token"):
        stop_ids(GenerationConfig(), SimpleNamespace(eos_token_id=None, name_or_path="m"))


def _pieces_tokenizer() -> PreTrainedTokenizerFast:
    """Multi-character tokens, as in StopStringCriteria's own examples (single letters too: it tokenizes a probe)."""
    vocab = ["<pad>", *string.ascii_lowercase, "st", "op", "stop", "opera", "sto", "pper", "las", "topper", "to",
             "pped", "at", "xstop", "xstopy", "tion", "</", "answer", ">", "</answer>"]
    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), "isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<pad>",
                                   clean_up_tokenization_spaces=False)


@pytest.mark.parametrize("pieces,ends_after", [
    (["st", "op"], 2),                 # the string spans two tokens
    (["stop"], 1),                     # one token is the string
    (["st", "opera"], 2),              # the completing token runs past the string: kept whole
    (["sto", "pper"], 2),
    (["las", "topper"], 2),            # the string starts inside a token and ends inside another
    (["s", "to", "pped"], 3),
    (["stop", "at"], 1),               # cut right after the completing token, nothing after it
    (["st", "opera", "tion"], 2),
    (["xstop"], 1),                    # inside one token
    (["xstopy"], 1),                   # inside one token, characters on both sides
    (["s", "t", "o", "a", "p"], None),  # the letters, not in order: no stop
    (["</", "answer", ">"], 3),        # a tag over three tokens (the second stop string)
    (["</answer>", "stop"], 1),        # the first string to appear ends it, whatever their order in the list
])
def test_stop_strings_end_where_hugging_faces_criterion_does(pieces, ends_after):
    """Feeding the tokens one at a time, the response ends after the token at which HF's StopStringCriteria
    first fires, and the recorded stop is the string."""
    tok = _pieces_tokenizer()
    stops = Stops([], ["stop", "</answer>"], tok)
    ids = tok.convert_tokens_to_ids(pieces)
    hf = StopStringCriteria(tok, ["stop", "</answer>"])
    fires = [k for k in range(1, len(ids) + 1) if bool(hf(torch.tensor([ids[:k]]), None)[0])]
    assert (fires[0] if fires else None) == ends_after
    ends, response = Ends(stops, 1), []
    for k, token in enumerate(ids, 1):
        response.append(token)
        if ends.update(torch.tensor([token]), [response])[0]:
            break
    assert (k if ends.done[0] else None) == ends_after
    expect = "stop" if "stop" in tok.decode(ids[:k]) else "</answer>"
    assert ends.reasons[0] == (("stop_string", expect) if ends_after else ("length", None))


def test_narrowing_to_tokens_that_hold_a_last_character():
    """Only tokens whose text holds the last character of a stop string are decoded; a string ending in
    whitespace, where decoding may drop or add spaces, turns the narrowing off."""
    tok = _pieces_tokenizer()
    may = Stops([], ["stop"], tok).may_complete(torch.tensor(tok.convert_tokens_to_ids(["op", "pped", "sto", "a"])))
    assert may.tolist() == [True, True, False, False]
    assert Stops([], ["stop "], tok).may_complete(torch.tensor([1, 2])).tolist() == [True, True]


@pytest.fixture(scope="module")
def model():
    return tiny_model(5)


def test_any_of_several_eos_ids_ends_a_response_and_the_tokens_before_it_stay(model):
    """A row's tokens do not depend on where it ends: with a second stop id each response is the one-EOS
    response cut after its first stop id, and the id that ended it is recorded."""
    prompts, seeds = [[5, 6, 7, 8]] * 32, list(range(32))
    params = SamplingParams(max_new_tokens=14)
    one = sample(model, prompts, seeds, params, EOS, PAD)
    two = sample(model, prompts, seeds, params, {EOS, 9}, PAD)
    for a, b in zip(one, two):
        cut = next((k + 1 for k, t in enumerate(a.response_ids) if t in (EOS, 9)), len(a.response_ids))
        assert b.response_ids == a.response_ids[:cut]
        last = b.response_ids[-1]
        assert (b.finish_reason, b.stop) == (("eos", str(last)) if last in (EOS, 9) else ("length", None))
    assert {b.stop for b in two} >= {str(EOS), "9"}  # both ids end some rows


def test_one_eos_id_as_an_int_a_set_or_stops_is_the_same_sampling(model):
    """The toy world has one EOS: its rollouts are those it always had, whichever form carries the id."""
    prompts, seeds = [[5, 6], [7, 8, 9], [10]] * 4, list(range(12))
    params = SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=10)
    runs = [sample(model, prompts, seeds, params, stops, PAD) for stops in (EOS, {EOS}, Stops([EOS]))]
    assert runs[0] == runs[1] == runs[2]
    assert all(r.finish_reason == ("eos" if r.response_ids[-1] == EOS else "length") for r in runs[0])


@pytest.fixture(scope="module")
def chat_pair():
    tok = chat_tokenizer()
    return tok, tiny_lm(len(tok), 11), tiny_lm(len(tok), 12)


def _chat_prompts(tok, n: int) -> tuple[list[list[int]], list[int]]:
    texts = [f"<|im_start|>user\n{a}+{b}=<|im_end|>\n<|im_start|>assistant\n" for a, b in zip(range(n), range(7, 7 + n))]
    return [tok.encode(t, add_special_tokens=False) for t in texts], [200 + i for i in range(n)]


def _reference_end(tok, ids: list[int], eos: set[int], strings: list[str]) -> tuple[list[int], str, str | None]:
    """Brute force: decode every prefix of a response that ran on without stop strings."""
    for k in range(1, len(ids) + 1):
        if ids[k - 1] in eos:
            return ids[:k], "eos", str(ids[k - 1])
        text = tok.decode(ids[:k])
        if hit := next((s for s in strings if s in text), None):
            return ids[:k], "stop_string", hit
    return ids, "length", None


@pytest.mark.parametrize("strings", [
    ["7", "q", "ab"],      # narrowed: only tokens holding 7, q or b are decoded
    ["x", "k\n", "Z "],     # two end in whitespace: every token is checked
])
def test_stop_strings_cut_each_row_where_decoding_every_prefix_would(chat_pair, strings):
    """Sampling with stop strings gives, row for row, the no-stop-string response cut at the first prefix whose
    decoded text contains a stop string; alone or in a batch, the same."""
    tok, base, _ = chat_pair
    prompts, seeds = _chat_prompts(tok, 24)
    params = SamplingParams(max_new_tokens=30)
    eos = {tok.eos_token_id}
    free = sample(base, prompts, seeds, params, eos, PAD)
    stops = Stops(eos, strings, tok)
    got = sample(base, prompts, seeds, params, stops, PAD)
    for g, f in zip(got, free):
        assert (g.response_ids, g.finish_reason, g.stop) == _reference_end(tok, f.response_ids, eos, strings)
    assert any(g.finish_reason == "stop_string" for g in got) and any(g.finish_reason != "stop_string" for g in got)
    alone = [sample(base, [p], [s], params, stops, PAD)[0] for p, s in zip(prompts[:6], seeds[:6])]
    assert alone == got[:6]


@pytest.mark.parametrize("direction,eps,policy", [("forward", math.inf, "base"), ("reverse", math.inf, "rl")])
def test_cross_sampling_that_never_switches_stops_as_sampling_does(chat_pair, direction, eps, policy):
    """eps = +inf: one model alone, token for token, with the same stop ids and strings and the same reasons."""
    tok, base, rl = chat_pair
    prompts, seeds = _chat_prompts(tok, 16)
    params = SamplingParams(max_new_tokens=24)
    stops = Stops({tok.eos_token_id, tok.convert_tokens_to_ids("<|endoftext|>")}, ["7", "ab"], tok)
    alone = sample(base if policy == "base" else rl, prompts, seeds, params, stops, PAD)
    got = cross_sample(base, rl, prompts, seeds, [SwitchRule(direction, "js", eps)] * 16, params, stops, PAD)
    assert [(g.response_ids, g.finish_reason, g.stop) for g in got] == \
        [(a.response_ids, a.finish_reason, a.stop) for a in alone]
    assert any(a.finish_reason == "stop_string" for a in alone)


def test_cross_sampling_with_stops_equals_the_reencoding_reference(chat_pair):
    tok, base, rl = chat_pair
    prompts, seeds = _chat_prompts(tok, 12)
    rules = [SwitchRule("forward" if i % 2 else "reverse", "js", 0.01) for i in range(12)]
    params = SamplingParams(temperature=0.8, max_new_tokens=20)
    stops = Stops({tok.eos_token_id}, ["7", "q"], tok)
    fast = cross_sample(base, rl, prompts, seeds, rules, params, stops, PAD)
    slow = cross_sample(base, rl, prompts, seeds, rules, params, stops, PAD, decoder=ReencodingDecoder)
    assert fast == slow
    assert any(f.finish_reason == "stop_string" for f in fast)
    for f in fast:
        if f.finish_reason == "stop_string":
            assert f.stop in tok.decode(f.response_ids) and f.stop not in tok.decode(f.response_ids[:-1])
