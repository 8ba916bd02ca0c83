"""Lockstep cross-sampling: the identities that pin it to plain sampling, the KV cache against a
re-encoding reference, and each switch criterion on hand-made distributions."""

import math

import pytest
import torch

from compute.cross_sampling import CRITERIA, CrossGrid, SwitchRule, SwitchRules, coin_seed, cross_sample
from compute.reencoding import ReencodingDecoder
from compute.sampling import SamplingParams, sample
from tests.compute.test_paired import VOCAB, tiny_model

EOS, PAD = 3, 0
INF = math.inf


@pytest.fixture(scope="module")
def pair():
    return tiny_model(5), tiny_model(6)


def _prompts(n: int) -> tuple[list[list[int]], list[int]]:
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(4, VOCAB, (int(k),), generator=g).tolist() for k in torch.randint(2, 7, (n,), generator=g)]
    return prompts, [100 + i for i in range(n)]


def _rules(direction: str, eps: float, n: int) -> list[list[SwitchRule]]:
    """Every criterion at `eps` (random: never at +inf, always at -inf)."""
    prob = 0.0 if eps > 0 else 1.0
    return [[SwitchRule(direction, c, eps, prob if c == "random" else 0.0)] * n for c in CRITERIA]


@pytest.mark.parametrize("direction,eps,policy", [
    ("forward", INF, "base"),    # never switch: the base alone
    ("reverse", INF, "rl"),      # never switch: the RL model alone
    ("forward", -INF, "rl"),     # always switch: every token from the RL model
    ("reverse", -INF, "base"),   # always switch: every token from the base
])
def test_extreme_eps_reproduce_single_model_sampling(pair, direction, eps, policy):
    """Both draws use the row's one uniform per step, exactly as `sample` does, so a rule that never (or
    always) switches must give the tokens of one model sampling alone, token for token, for every criterion."""
    base, rl = pair
    prompts, seeds = _prompts(12)
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=10)
    alone = sample(base if policy == "base" else rl, prompts, seeds, params, EOS, PAD)
    for rules, on in [(r, on) for r in _rules(direction, eps, len(prompts)) for on in ("full", "sampling")]:
        got = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, divergence_on=on)
        assert [g.response_ids for g in got] == [a.response_ids for a in alone], (rules[0], on)
        assert [g.finish_reason for g in got] == [a.finish_reason for a in alone]
        expect = [[] if eps > 0 else list(range(len(a.response_ids))) for a in alone]
        assert [g.switched_positions for g in got] == expect


def test_kv_cache_lockstep_equals_reencoding_reference(pair):
    """Mixed rules in one batch: the cached lockstep decoder and a reference that re-encodes the whole
    prefix every step must choose the same tokens and switch at the same positions."""
    base, rl = pair
    prompts, seeds = _prompts(16)
    rules = [SwitchRule("forward" if i % 2 else "reverse", CRITERIA[i % 4], (0.05, 1.0, 2.5, 0.3)[i % 4],
                        0.3 if i % 4 == 3 else 0.0) for i in range(16)]
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=12)
    fast = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD)
    slow = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, decoder=ReencodingDecoder)
    assert [f.response_ids for f in fast] == [s.response_ids for s in slow]
    assert [f.switched_positions for f in fast] == [s.switched_positions for s in slow]
    # the rules are not degenerate: some rows switch some tokens but not all
    shares = [len(f.switched_positions) / len(f.response_ids) for f in fast]
    assert any(0 < s < 1 for s in shares)


@pytest.mark.parametrize("dead_share", [0.25, 0.0, 1.0])  # the default; rebuilt at every drop; never rebuilt
def test_rows_sharing_a_prompt_and_seed_share_their_decoding_and_still_decode_as_alone(pair, monkeypatch, dead_share):
    """A study's batch: every problem's sample under every rule of both directions. Rows with one prompt and
    seed share a decoding state until their tokens differ, then fork; each row must still get what the
    row-by-row re-encoding reference gives it, whatever rows share its batch and in whatever order, and however
    often the states that no row reads are dropped."""
    from compute import cross_sampling, decoders

    base, rl = pair
    prompts, seeds = _prompts(6)
    rules = [SwitchRule(d, c, e) for d in ("forward", "reverse") for c, grid in
             (("js", (0.01, 0.05, 0.2)), ("delta_logp", (0.5, 1.5)), ("entropy", (1.0, 2.0))) for e in grid]
    rules += [SwitchRule(d, "random", 0.05, 0.2, coin) for d in ("forward", "reverse") for coin in (0, 1)]
    jobs = [(p, s, r) for p, s in zip(prompts, seeds) for r in rules]
    jobs = [jobs[i] for i in torch.randperm(len(jobs), generator=torch.Generator().manual_seed(1)).tolist()]
    prompts, seeds, rules = map(list, zip(*jobs))
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=12)
    states = []
    step = decoders.StaticDecoder.step
    monkeypatch.setattr(decoders.StaticDecoder, "step", lambda self, ids: states.append(ids.numel()) or step(self, ids))
    monkeypatch.setattr(cross_sampling._next_states, "__defaults__", (dead_share,))
    shared = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD)
    monkeypatch.undo()
    slow = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, decoder=ReencodingDecoder)
    assert [(f.response_ids, f.switched_positions, f.finish_reason) for f in shared] == \
        [(s.response_ids, s.switched_positions, s.finish_reason) for s in slow]
    distinct = len({(tuple(p), tuple(f.response_ids)) for f, (p, _, _) in zip(shared, jobs)})
    assert states[0] > 6 and distinct < len(jobs)  # forked after the first token
    assert max(states) <= len(jobs)  # never more states than the batch's rows, whose KV buffers it was sized for
    if dead_share < 1:  # states no row reads are at most dead_share of those decoded: shared throughout
        assert max(states) <= distinct / (1 - dead_share)
    assert sum(states) < len(jobs) * params.max_new_tokens  # less decoding than one state per row


def test_a_row_depends_on_its_prompt_seed_and_rule_only(pair):
    base, rl = pair
    prompts, seeds = _prompts(6)
    rules = [SwitchRule("forward", "js", 0.05)] * 3 + [SwitchRule("reverse", "random", 0.05, 0.5)] * 3
    params = SamplingParams(max_new_tokens=10)
    together = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD)
    alone = [cross_sample(base, rl, [p], [s], [r], params, EOS, PAD)[0] for p, s, r in zip(prompts, seeds, rules)]
    assert [(t.response_ids, t.switched_positions) for t in together] == \
        [(a.response_ids, a.switched_positions) for a in alone]


def test_each_coin_seed_flips_its_own_coins_the_same_in_every_rule(pair):
    """Random controls with one coin index flip the same coins in a row whatever their budget (common random
    numbers, by design): until a row first switches, both budgets decode the same tokens, so the larger
    budget switches first at or before the smaller one. Another index flips other coins. The grid runs
    every control once per index."""
    base, rl = pair
    prompts, seeds = _prompts(8)
    params = SamplingParams(max_new_tokens=10)

    def switched(rule):
        return [g.switched_positions for g in cross_sample(base, rl, prompts, seeds, [rule] * 8, params, EOS, PAD)]

    def first(positions):
        return [p[0] if p else 99 for p in positions]

    coin0 = switched(SwitchRule("forward", "random", 0.01, 0.4))
    small = switched(SwitchRule("forward", "random", 0.3, 0.15))
    assert all(a <= b for a, b in zip(first(coin0), first(small)))  # u < 0.15 implies u < 0.4, same u
    assert first(coin0) != first(small)  # the budgets do differ
    coin1 = switched(SwitchRule("forward", "random", 0.01, 0.4, coin=1))
    assert coin1 != coin0 and any(coin1) and any(coin0)
    seeds_of_7 = [coin_seed(7, c) for c in range(3)]
    assert coin_seed(7) == seeds_of_7[0] and len(set(seeds_of_7)) == 3
    grid = CrossGrid(("forward", "reverse"), (("js", (0.1, 0.2)),), random_seeds=3)
    controls = grid.random_rules({(d, e): 0.1 for d in ("forward", "reverse") for e in (0.1, 0.2)})
    assert sorted((r.direction, r.eps, r.coin) for r in controls) == \
        sorted((d, e, c) for d in ("forward", "reverse") for e in (0.1, 0.2) for c in range(3))
    with pytest.raises(ValueError, match="coin seed"):
        CrossGrid(("forward",), (("js", (0.1,)),), random_seeds=0)


def test_switches_are_counted_over_the_response_only(pair):
    """Rows that end early keep decoding padding in the batch; nothing after their EOS is recorded."""
    base, rl = pair
    prompts, seeds = _prompts(32)
    got = cross_sample(base, rl, prompts, seeds, [SwitchRule("forward", "js", -INF)] * 32,
                       SamplingParams(max_new_tokens=15), EOS, PAD)
    assert any(g.finish_reason == "eos" for g in got) and any(g.finish_reason == "length" for g in got)
    for g in got:
        assert EOS not in g.response_ids[:-1]
        assert g.switched_positions == list(range(len(g.response_ids)))


def _logq(*rows):
    return torch.log(torch.tensor(rows, dtype=torch.float32))


@pytest.mark.parametrize("rule,expect", [
    # JS of (.9,.1,0) vs (.1,.9,0) is 0.368 nats; of identical rows 0
    (SwitchRule("forward", "js", 0.3), [True, False]),
    (SwitchRule("forward", "js", 0.4), [False, False]),
    # token 0 drawn: log q_i(0) - log q_p(0) = log(.1/.9) = -2.197 in row 0, 0 in row 1
    (SwitchRule("forward", "delta_logp", 2.0), [True, False]),
    (SwitchRule("forward", "delta_logp", 2.3), [False, False]),
    (SwitchRule("forward", "delta_logp", -0.5), [True, True]),
    # entropy of the primary: 0.325 nats in row 0, 0.325 in row 1
    (SwitchRule("forward", "entropy", 0.3), [True, True]),
    (SwitchRule("forward", "entropy", 0.33), [False, False]),
    # random: coins are 0.25 and 0.75
    (SwitchRule("forward", "random", 0.1, switch_prob=0.5), [True, False]),
])
def test_switch_criteria_on_hand_made_distributions(rule, expect):
    primary = _logq([0.9, 0.1, 0.0], [0.9, 0.1, 0.0])
    intervening = _logq([0.1, 0.9, 0.0], [0.9, 0.1, 0.0])
    coins = torch.tensor([0.25, 0.75], dtype=torch.float64)
    rules, drawn = SwitchRules([rule, rule], "cpu"), torch.tensor([0, 0])
    got = rules.mask(rules.signals(primary, intervening, drawn, drawn), None, coins)
    assert got.tolist() == expect


def test_bad_rules_and_options_are_refused(pair):
    with pytest.raises(ValueError, match="direction"):
        SwitchRule("sideways", "js", 0.1)
    with pytest.raises(ValueError, match="criterion"):
        SwitchRule("forward", "kl", 0.1)
    with pytest.raises(ValueError, match="switch_prob"):
        SwitchRule("forward", "random", 0.1, switch_prob=1.5)
    with pytest.raises(ValueError, match="divergence_on"):
        cross_sample(*pair, [[5]], [1], [SwitchRule("forward", "js", 0.1)], SamplingParams(), EOS, PAD,
                     divergence_on="truncated")
