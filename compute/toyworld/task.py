"""Fixed-width 4-digit addition, answered column by column or by a direct guess.

Prompt "^3471+2856=", worked answer ":1+6=7,7+5=12,4+8+1=13,3+2+1=6;6327$", direct guess "#6327$".
SFT targets carry mistakes at three decision points (start, middle, end) so that the SFT base is often
wrong in ways RL can fix. Knows nothing about tokens or models: strings in, strings out.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

WIDTH = 4


@dataclass(frozen=True)
class Noise:
    """Probabilities of the SFT data's mistakes."""

    direct_guess: float = 0.6  # start: answer "#<sum>$" instead of working the columns
    dropped_carry: float = 0.15  # middle: a column ignores its incoming carry
    dropped_final_carry: float = 0.55  # end: the leading 1 of a 5-digit sum is left out


def prompt_for(a: int, b: int, width: int = WIDTH) -> str:
    return f"^{a:0{width}d}+{b:0{width}d}="


def answer_for(a: int, b: int) -> str:
    return str(a + b)


def worked_solution(a: int, b: int, rng: random.Random | None = None, noise: Noise | None = None,
                    width: int = WIDTH) -> str:
    """The column-by-column answer, exact when `rng` is None, else with the middle/end mistakes of `noise`."""
    da, db = f"{a:0{width}d}"[::-1], f"{b:0{width}d}"[::-1]
    steps, digits, carry = [], [], 0
    for x, y in zip(da, db):
        if carry and rng is not None and rng.random() < noise.dropped_carry:
            carry = 0
        total = int(x) + int(y) + carry
        steps.append(f"{x}+{y}" + ("+1" if carry else "") + f"={total}")
        digits.append(str(total % 10))
        carry = total // 10
    result = "".join(reversed(digits))
    if carry and not (rng is not None and rng.random() < noise.dropped_final_carry):
        result = "1" + result
    return ":" + ",".join(steps) + ";" + result + "$"


def sft_response(a: int, b: int, rng: random.Random, noise: Noise, width: int = WIDTH) -> str:
    """One SFT target: a direct guess with probability noise.direct_guess, else the noisy worked answer."""
    if rng.random() < noise.direct_guess:
        return "#" + answer_for(a, b) + "$"
    return worked_solution(a, b, rng, noise, width)


def random_operands(rng: random.Random, width: int = WIDTH) -> tuple[int, int]:
    return rng.randrange(10**width), rng.randrange(10**width)


def eval_problems(n: int, seed: int, width: int = WIDTH) -> list[dict]:
    """The evaluation split: `n` problems with ids, prompts and answers, drawn from their own seed."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = random_operands(rng, width)
        rows.append({"problem_id": f"add-{i:05d}", "prompt": prompt_for(a, b, width), "answer": answer_for(a, b)})
    return rows
