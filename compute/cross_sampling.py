"""Cross-sampling: two models decode in lockstep over the same prefix, and a switch rule decides, token by
token, which model's distribution the next token is drawn from.

`forward`: the primary is the base and the intervening model the RL checkpoint; `reverse`: the other way
round. At every step both models give their next-token distributions; the primary's token x is drawn with
the row's uniform; if the rule says switch, the token is drawn instead from the intervening distribution
with the *same* uniform. The chosen token is appended to both models' KV caches (`decoders.decoder_for`), so
the prefix is encoded once; where the step is not captured in a CUDA graph, rows with the same prompt and
seed (one sample under every rule) share one decoding state until their tokens differ. Criteria (each with a
threshold `eps`):

    js          JS(primary || intervening) > eps
    delta_logp  log p_intervening(x) - log p_primary(x) < -eps  (forward: log p_rl(x) - log p_base(x))
    entropy     H(primary) > eps
    random      a separate per-row coin < switch_prob (the control, with a budget matched to a js run)

A row's coin comes from its sampling seed and the rule's coin index (`coin_seed`): every random rule with the
same index flips the same coins in the same row, whatever its eps or checkpoint. That is intended (common
random numbers: comparisons between eps values and checkpoints see the same coins, not fresh noise); the
spread of the control itself shows over several indices (`CrossGrid.random_seeds`).

The criteria read the models' full distributions (`divergence_on="full"`) or the temperature/top-p
distributions that tokens are drawn from (`"sampling"`, as the paper did). Uniforms come from the same
per-row generators as `sampling.sample`, so with eps = +inf `forward` reproduces base-only sampling and
`reverse` RL-only sampling token for token; with eps = -inf the other way round. Knows nothing about tables.
Kept whole although over 250 lines: the rules, the row-by-row loop and the shared-state loop are one step
(`SwitchRules.tokens`) driven two ways; split, the two loops would sit apart from the step they must agree on.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from compute.decoders import StaticDecoder, compiled, decoder_for, static_decoding
from compute.loop import Loop
from compute.metrics import entropy, js_divergence
from compute.prompts import Ends, Stops
from compute.sampling import RowGenerators, SamplingParams, draw, next_token_probs

DIRECTIONS = ("forward", "reverse")
CRITERIA = ("js", "delta_logp", "entropy", "random")
DIVERGENCE_ON = ("full", "sampling")


@dataclass(frozen=True)
class SwitchRule:
    direction: str
    criterion: str
    eps: float  # for `random`: the eps of the js run whose budget it matches
    switch_prob: float = 0.0  # `random` only: probability of a switch at each step
    coin: int = 0  # `random` only: which of the row's coin sequences it flips (`coin_seed`)

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction {self.direction!r}: choose one of {DIRECTIONS}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"criterion {self.criterion!r}: choose one of {CRITERIA}")
        if math.isnan(self.eps) or not 0.0 <= self.switch_prob <= 1.0 or self.coin < 0:
            raise ValueError(f"bad switch rule {self}: eps must be a number, switch_prob in [0, 1], coin >= 0")


@dataclass
class CrossSampled:
    response_ids: list[int]
    finish_reason: str  # "eos" | "stop_string" | "length"
    switched_positions: list[int]  # positions (0-based, within the response) drawn from the intervening model
    stop: str | None = None  # what ended it: the EOS id (as text) or the stop string; None at length


def coin_seed(seed: int, coin: int = 0) -> int:
    """The seed of a row's switch coins (random control) for coin index `coin`: derived from, and independent
    of, its sampling seed; another index gives an independent sequence."""
    label = "coin" if coin == 0 else f"coin{coin}"
    return int.from_bytes(hashlib.sha256(f"{label}:{seed}".encode()).digest()[:8], "little") >> 2


def _log_dists(logits: torch.Tensor, probs: torch.Tensor, divergence_on: str) -> torch.Tensor:
    if divergence_on == "full":
        return torch.log_softmax(logits.float(), -1)
    return probs.log()


class SwitchRules:
    """A batch's rules as tensors (built once per batch, not per step)."""

    def __init__(self, rules: list[SwitchRule], device, compile: bool = False):
        # the signals' vocabulary-wide arithmetic under torch.compile (`decoders.compiled`), chosen once per batch
        self._signals = compiled(SwitchRules.signals) if compile else SwitchRules.signals
        self.forward = torch.tensor([r.direction == "forward" for r in rules], device=device).unsqueeze(-1)
        self.criterion = torch.tensor([CRITERIA.index(r.criterion) for r in rules], device=device)
        self.eps = torch.tensor([r.eps for r in rules], dtype=torch.float32, device=device)
        self.switch_prob = torch.tensor([r.switch_prob for r in rules], dtype=torch.float64, device=device)
        self.present = {r.criterion for r in rules}  # full-vocabulary terms of absent criteria are skipped

    def keep(self, rows: torch.Tensor) -> None:
        rows = rows.to(self.criterion.device)
        self.forward, self.criterion = self.forward[rows], self.criterion[rows]
        self.eps, self.switch_prob = self.eps[rows], self.switch_prob[rows]

    def signals(self, q_base: torch.Tensor, q_rl: torch.Tensor, t_base: torch.Tensor,
                t_rl: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the present criteria read from one step of one decoding state (`q_*` [n, vocab] log-distributions,
        `t_*` [n] each model's draw with the state's uniform), for rows of either direction: the JS divergence
        (symmetric), and per direction the primary's entropy and the log-prob gap at the primary's token."""
        out = {}
        if "js" in self.present:
            out["js"] = js_divergence(q_base, q_rl)
        if "delta_logp" in self.present:
            at_base, at_rl = t_base.to(q_base.device).unsqueeze(-1), t_rl.to(q_base.device).unsqueeze(-1)
            out["delta_forward"] = (q_rl.gather(-1, at_base) - q_base.gather(-1, at_base)).squeeze(-1)
            out["delta_reverse"] = (q_base.gather(-1, at_rl) - q_rl.gather(-1, at_rl)).squeeze(-1)
        if "entropy" in self.present:
            out["entropy_forward"], out["entropy_reverse"] = entropy(q_base), entropy(q_rl)
        return out

    def mask(self, signals: dict[str, torch.Tensor], state: torch.Tensor | None, coins: torch.Tensor) -> torch.Tensor:
        """Which rows switch to the intervening model: row i reads the `signals` of decoding state `state[i]`
        (None: state i) and its own coin."""
        crit, eps, forward = self.criterion, self.eps, self.forward.squeeze(-1)

        def of(name: str) -> torch.Tensor:
            return signals[name] if state is None else signals[name][state]

        def directed(name: str) -> torch.Tensor:
            return torch.where(forward, of(f"{name}_forward"), of(f"{name}_reverse"))

        switch = torch.zeros_like(crit, dtype=torch.bool)
        if "js" in self.present:
            switch |= (crit == 0) & (of("js") > eps)
        if "delta_logp" in self.present:
            switch |= (crit == 1) & (directed("delta") < -eps)
        if "entropy" in self.present:
            switch |= (crit == 2) & (directed("entropy") > eps)
        if "random" in self.present:
            switch |= (crit == 3) & (coins.to(crit.device) < self.switch_prob)
        return switch

    def tokens(self, p_base: torch.Tensor, p_rl: torch.Tensor, q_base: torch.Tensor, q_rl: torch.Tensor,
               u: torch.Tensor, state: torch.Tensor | None, coins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One lockstep step of every row: (token, switched) [rows]. Each decoding state's two candidates are
        the base's and the RL model's draw with its uniform; a row takes its primary's, or its intervening
        model's where its rule switches. Row i reads state `state[i]` (None: state i)."""
        t_base, t_rl = draw(p_base, u), draw(p_rl, u)
        switch = self.mask(self._signals(self, q_base, q_rl, t_base, t_rl), state, coins)
        if state is not None:
            t_base, t_rl = t_base[state], t_rl[state]
        forward = self.forward.squeeze(-1)
        primary, intervening = torch.where(forward, t_base, t_rl), torch.where(forward, t_rl, t_base)
        return torch.where(switch, intervening, primary), switch


@torch.inference_mode()
def cross_sample(base, rl, prompts: list[list[int]], seeds: list[int], rules: list[SwitchRule],
                 params: SamplingParams, stops: Stops | int | Iterable[int], pad_id: int,
                 divergence_on: str = "full", decoder=None, graph: bool | None = None,
                 check_every: int | None = None, compile: bool = False) -> list[CrossSampled]:
    """One lockstep response per row: row i decodes `prompts[i]` under `rules[i]` from `seeds[i]`.

    A response ends as `sampling.sample`'s do: at a stop id or stop string of `stops` (the token that ended
    it included) or after `params.max_new_tokens`; switches are counted over the response only. `decoder`
    overrides the incremental decoder class (tests pass a re-encoding reference); `graph` and `check_every` as in
    `sampling.sample`: the whole lockstep step (both models, the rule, the draw) is one CUDA graph on a GPU.
    Where the step is not captured and both models take `decoders.StaticDecoder`, rows that share a prompt and a
    seed share their decoding until their tokens differ (`_shared`). `compile` runs both models' decode steps and
    the step's vocabulary-wide arithmetic (softmax, log-softmax, the rules' signals; not the draw's cumulative sum)
    compiled (`decoders.compiled`), one row per decoding state.
    """
    if divergence_on not in DIVERGENCE_ON:
        raise ValueError(f"divergence_on={divergence_on!r}: choose one of {DIVERGENCE_ON}")
    if not len(prompts) == len(seeds) == len(rules):
        raise ValueError("prompts, seeds and rules must have one entry per row")
    device = next(base.parameters()).device
    if decoder is None and not compile and shares_decoding(base, rl, graph):
        return _shared(base, rl, prompts, seeds, rules, params, stops, pad_id, divergence_on)
    steps = params.max_new_tokens
    dec_base = decoder_for(base, prompts, pad_id, steps, decoder, compile)
    dec_rl = decoder_for(rl, prompts, pad_id, steps, decoder, compile)
    switch_rules = SwitchRules(rules, device, compile)
    rng = RowGenerators(seeds, steps, device)
    coin = _coins(seeds, rules, steps, device)
    loop = Loop(len(prompts), steps, device, {"tokens": torch.long, "switched": torch.bool})
    state = {"base": dec_base.start().clone(), "rl": dec_rl.start().to(device)}
    probs, log_dists = (compiled(f) if compile else f for f in (next_token_probs, _log_dists))

    def step():
        base, rl = state["base"].float(), state["rl"].float()  # half-precision logits widened once, not twice
        p_base, p_rl = probs(base, params), probs(rl, params)
        q_base, q_rl = log_dists(base, p_base, divergence_on), log_dists(rl, p_rl, divergence_on)
        token, switch = switch_rules.tokens(p_base, p_rl, q_base, q_rl, rng.at(loop.at), None, coin.at(loop.at))
        loop.write("tokens", token)
        loop.write("switched", switch)
        state["base"].copy_(dec_base.step(token))
        state["rl"].copy_(dec_rl.step(token))
        loop.at.add_(1)

    def keep(rows):
        for name in state:
            state[name] = state[name][rows.to(device)]
        for part in (switch_rules, rng, coin, dec_base, dec_rl):
            part.keep(rows)

    ends, responses = Ends(stops, len(prompts)), [[] for _ in prompts]
    loop.run(step, ends, responses, [dec_base, dec_rl], graph, check_every, keep)
    return _responses(responses, ends, loop.host["switched"])


def shares_decoding(base, rl, graph: bool | None = None) -> bool:
    """Whether `cross_sample` decodes `base` and `rl` with one state per distinct token sequence (`_shared`): where
    the step is not captured as a CUDA graph (`graph` as `cross_sample` takes it: None captures on a GPU) and
    `decoders.StaticDecoder` drives both models."""
    captured = graph if graph is not None else next(base.parameters()).device.type == "cuda"
    return not captured and static_decoding(base) and static_decoding(rl)


def _shared(base, rl, prompts: list[list[int]], seeds: list[int], rules: list[SwitchRule], params: SamplingParams,
            stops: Stops | int | Iterable[int], pad_id: int, divergence_on: str) -> list[CrossSampled]:
    """`cross_sample` with one decoding state per distinct token sequence instead of one per row.

    Rows with the same prompt and seed draw the same uniforms, so until their tokens differ they hold the same
    prefix: one state (both models' KV caches and next-token distributions) serves them all. A state's rows
    take one of its two candidate tokens each step (`SwitchRules.tokens`); where they take both, the state
    forks (`_next_states`: a copy of it appended), and states whose rows have all ended are dropped once they are
    a quarter of those decoded. Every row still decodes exactly its own prompt, seed and rule; the default toy
    world's 40k lockstep rows per checkpoint share 2.0k-2.3k distinct responses. The host looks at every step, as a
    CPU loop costs nothing to."""
    steps, rows = params.max_new_tokens, len(prompts)
    device = next(base.parameters()).device
    first: dict[tuple, int] = {}
    state = torch.tensor([first.setdefault((tuple(p), s), len(first)) for p, s in zip(prompts, seeds)])
    distinct = [(list(p), s) for p, s in first]
    decoders = [StaticDecoder(m, [p for p, _ in distinct], pad_id, steps) for m in (base, rl)]
    logits = [decoders[0].start(), decoders[1].start().to(device)]
    rng = RowGenerators([s for _, s in distinct], steps, device)
    coins = _coins(seeds, rules, steps, device).table
    switch_rules = SwitchRules(rules, device)
    live = torch.arange(rows)
    tokens, switched = torch.zeros(rows, steps, dtype=torch.long), torch.zeros(rows, steps, dtype=torch.bool)
    ends, responses = Ends(stops, rows), [[] for _ in prompts]
    for at in range(steps):
        wide = [lg.float() for lg in logits]  # half-precision logits widened once, not twice
        p_base, p_rl = (next_token_probs(lg, params) for lg in wide)
        q_base, q_rl = (_log_dists(lg, p, divergence_on) for lg, p in zip(wide, (p_base, p_rl)))
        token, switch = switch_rules.tokens(p_base, p_rl, q_base, q_rl, rng.table[:, at], state.to(device),
                                            coins[live.to(device), at])
        token = token.cpu()
        tokens[live, at], switched[live, at] = token, switch.cpu()
        done = ends.feed(tokens[:, at: at + 1], responses)
        stay = ~done[live]
        if not stay.any() or at == steps - 1:
            break
        live, state, token = live[stay], state[stay], token[stay]
        switch_rules.keep(stay.nonzero().flatten())
        state, next_tokens = _next_states(state, token, p_base.shape[-1], rng, decoders, rows)
        for i, dec in enumerate(decoders):
            logits[i] = dec.step(next_tokens).to(device)
    return _responses(responses, ends, switched)


def _next_states(state: torch.Tensor, token: torch.Tensor, vocab: int, rng: RowGenerators,
                 decoders: list[StaticDecoder], most: int, dead_share: float = 0.25
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """`_shared`'s states after a step, one per distinct (state, token) of the live rows: returns each row's state
    and each state's next token. A state's first token keeps its slot and each further one takes a copy of it
    appended after the others (`StaticDecoder.fork`), so a step that forks a few states copies a few. A state that
    no row reads stays in its slot, decoded for nothing, until such states would be more than `dead_share` of all,
    or the slots more than `most` (the batch's rows, whose KV buffers the batch size was chosen to hold): then the
    states are rebuilt in order from the ones read (`StaticDecoder.keep`)."""
    slots = len(rng.table)
    kept, inverse = torch.unique(state * vocab + token, return_inverse=True)
    parents, tokens = kept // vocab, kept % vocab
    first = torch.ones(len(parents), dtype=torch.bool)
    first[1:] = parents[1:] != parents[:-1]
    extra = (~first).nonzero().flatten()
    if len(kept) < (1 - dead_share) * (slots + len(extra)) or slots + len(extra) > most:
        rng.keep(parents)
        for dec in decoders:
            dec.keep(parents)
        return inverse, tokens
    slot = parents.clone()
    slot[extra] = slots + torch.arange(len(extra))
    if len(extra):
        rng.keep(torch.cat([torch.arange(slots), parents[extra]]))
        for dec in decoders:
            dec.fork(parents[extra], most)
    fed = torch.zeros(slots + len(extra), dtype=torch.long)
    fed[slot] = tokens
    return slot[inverse], fed


def _coins(seeds: list[int], rules: list[SwitchRule], steps: int, device) -> RowGenerators:
    """The rows' switch coins (`coin_seed`), drawn for rows of random rules only: no other rule reads them."""
    coins, table = RowGenerators([], steps, device), torch.zeros(len(rules), steps, dtype=torch.float64)
    drawn = [i for i, r in enumerate(rules) if r.criterion == "random"]
    if drawn:
        table[drawn] = RowGenerators([coin_seed(seeds[i], rules[i].coin) for i in drawn], steps).table
    coins.table = table.to(device)
    return coins


def _responses(responses: list[list[int]], ends: Ends, switched: torch.Tensor) -> list[CrossSampled]:
    lengths = torch.tensor([len(r) for r in responses], dtype=torch.long)
    rows, positions = switched.nonzero().unbind(1)  # row-major: each row's positions in order
    inside = positions < lengths[rows]
    per_row = torch.bincount(rows[inside], minlength=len(responses)).tolist()
    flat, at, out = positions[inside].tolist(), 0, []
    for r, (reason, stop), n in zip(responses, ends.reasons, per_row):
        out.append(CrossSampled(r, reason, flat[at: at + n], stop))
        at += n
    return out


@dataclass(frozen=True)
class CrossGrid:
    """The sweep of one checkpoint: every direction x criterion x eps, and for each js run a random control
    whose switch probability is that run's share of switched tokens, once per coin index (`random_seeds`)."""

    directions: tuple[str, ...]
    eps: tuple[tuple[str, tuple[float, ...]], ...]  # (criterion, its thresholds) for js, delta_logp, entropy
    random_control: bool = True
    divergence_on: str = "full"
    random_seeds: int = 1  # independent coin sequences per random control (its spread shows over them)

    def __post_init__(self):
        for d in self.directions:
            SwitchRule(d, "js", 0.0)
        for criterion, grid in self.eps:
            if criterion == "random":
                raise ValueError("the random control takes its budgets from the js runs; it has no eps grid")
            for e in grid:
                SwitchRule(self.directions[0] if self.directions else "forward", criterion, e)
        if self.random_control and not dict(self.eps).get("js"):
            raise ValueError("the random control matches js budgets: give a js eps grid or turn the control off")
        if self.divergence_on not in DIVERGENCE_ON:
            raise ValueError(f"divergence_on={self.divergence_on!r}: choose one of {DIVERGENCE_ON}")
        if self.random_control and self.random_seeds < 1:
            raise ValueError(f"random_seeds={self.random_seeds}: the random control needs at least one coin seed")

    def rules(self) -> list[SwitchRule]:
        return [SwitchRule(d, c, e) for d in self.directions for c, grid in self.eps for e in grid]

    def random_rules(self, js_token_share: dict[tuple[str, float], float]) -> list[SwitchRule]:
        """Random controls for the js runs, from their (direction, eps) -> share of switched tokens."""
        if not self.random_control:
            return []
        return [SwitchRule(d, "random", e, float(js_token_share[(d, e)]), coin)
                for coin in range(self.random_seeds) for d in self.directions for e in dict(self.eps)["js"]]


def parse_eps(text: str, what: str) -> tuple[float, ...]:
    """"0.001, 0.01, inf" -> (0.001, 0.01, inf); an empty string turns the criterion off."""
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ValueError(f"{what}={text!r}: expected comma-separated numbers such as 0.001,0.01,0.1 "
                         "(inf and -inf allowed)") from None
    if any(math.isnan(v) for v in values):
        raise ValueError(f"{what}={text!r}: nan is not a threshold")
    return values
