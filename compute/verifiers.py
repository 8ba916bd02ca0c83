"""Verifiers: turn a response text and a reference answer into (extracted answer, correct).

Each verifier has a name and a version that are recorded with every score. Knows nothing about models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    extracted_answer: str | None
    correct: bool


@dataclass(frozen=True)
class Verifier:
    name: str
    version: str
    judge: Callable[[str, str], Verdict]


_TOY_ANSWER = re.compile(r"[;#]([0-9]+)\$")


def judge_toy_addition(response: str, answer: str) -> Verdict:
    """Exact check of the digits between the last ';' or '#' and the '$' that closes the response."""
    end = response.find("$")
    if end < 0:
        return Verdict(None, False)
    matches = _TOY_ANSWER.findall(response[: end + 1])
    if not matches:
        return Verdict(None, False)
    got = matches[-1]
    return Verdict(got, int(got) == int(answer))


TOY_ADDITION = Verifier("toy_addition", "1", judge_toy_addition)
VERIFIERS = {v.name: v for v in (TOY_ADDITION,)}


def get_verifier(name: str) -> Verifier:
    if name not in VERIFIERS:
        raise ValueError(f"unknown verifier {name!r}; choose one of {sorted(VERIFIERS)}")
    return VERIFIERS[name]


def toy_reward(response: str, answer: str) -> float:
    return float(judge_toy_addition(response, answer).correct)
