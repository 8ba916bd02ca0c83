"""Verifiers: turn a response text and a reference answer into a verdict (extracted answer, correct, reason,
and which extraction produced the answer).

Each verifier has a name and a version that are recorded with every score. `toy_addition` checks the toy
world's answers in process. `math_verify` hands the whole response to Hugging Face's math-verify, called as
its own tests call it: its extraction picks the answer by its own priorities (`\\boxed{}` first; boxed answers a
few words apart, such as `\\boxed{1}, \\boxed{2}`, are one set; of boxed answers far apart the last counts) and
it compares that answer symbolically with the reference. It runs in worker processes with a hard timeout per
answer (math-verify's own SIGALRM timeouts only work on a main thread), and an answer that takes too long
scores as incorrect with reason `timeout`. Which verifier judges which dataset is a spec such as `math_verify`
or `math500=math_verify,toy=toy_addition,*=math_verify`. Knows nothing about models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as package_version
from itertools import groupby

from compute.workers import TIMEOUT, run_with_timeout

REASONS = ("correct", "wrong", "no_answer", "timeout", "error")
# what produced the extracted answer: a math-verify `\boxed{}` pattern, another LaTeX pattern (`$...$`, `\[...\]`,
# "final answer is ..."), its plain-expression pattern, a match it could not convert (its text is the answer),
# or the toy world's `;46$` ending
EXTRACTIONS = ("latex_boxed", "latex", "expr", "unparsed", "toy_final")


@dataclass(frozen=True)
class Verdict:
    extracted_answer: str | None
    correct: bool
    reason: str  # one of REASONS
    extraction: str | None = None  # one of EXTRACTIONS; None when nothing was extracted


@dataclass(frozen=True)
class Verifier:
    name: str
    version: str
    judge: Callable[[str, str], Verdict]  # (response, reference answer) -> verdict; importable, for workers
    isolated: bool = False  # True: judge in worker processes with a hard timeout
    prepare: Callable[[], None] | None = None  # run once per worker before its first answer (imports)

    def judge_all(self, pairs: list[tuple[str, str]], timeout_s: float = 5.0, workers: int = 2) -> list[Verdict]:
        """Verdicts on (response, reference answer) pairs, in order."""
        if not self.isolated:
            return [self.judge(response, answer) for response, answer in pairs]
        results = run_with_timeout(self.judge, pairs, timeout_s=timeout_s, workers=workers, prepare=self.prepare)
        return [Verdict(None, False, "timeout") if r is TIMEOUT
                else Verdict(None, False, "error") if isinstance(r, BaseException) else r for r in results]


_TOY_ANSWER = re.compile(r"[;#]([0-9]+)\$")


def judge_toy_addition(response: str, answer: str) -> Verdict:
    """Exact check of the digits between the last ';' or '#' and the '$' that closes the response."""
    end = response.find("$")
    if end < 0:
        return Verdict(None, False, "no_answer")
    matches = _TOY_ANSWER.findall(response[: end + 1])
    if not matches:
        return Verdict(None, False, "no_answer")
    got = matches[-1]
    correct = int(got) == int(answer)
    return Verdict(got, correct, "correct" if correct else "wrong", "toy_final")


# A bare reference that is one plain number in math-verify's number syntax (thousands separators, a decimal point
# or comma, a percent sign) goes to it as is: its expression extraction reads `1,22` as 1.22, as its tests expect.
# Any other bare reference is LaTeX without its environment (`\frac{1}{2}`, `(1,2]`, `3, 2`) and goes in `$...$`.
_PLAIN_NUMBER = re.compile(r"-?(?:[1-9]\d{0,2}(?:[ ,]\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+)\s*%?")
_LATEX_ENVIRONMENT = re.compile(r"(?<!\\)\$|\\boxed|\\\[|\\\(")  # `\$` is a dollar sign, not math


def _math_configs():
    """Gold and prediction are both parsed as math-verify's tests parse them (`compare_strings` in its
    tests/test_all.py, its README's advice for predictions): LaTeX with `\\boxed{}` first, then plain expressions."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


def _winning_match(response: str, configs) -> tuple[str, str] | None:
    """(text, extraction) of the match that math-verify's `parse` takes from `response`: its own patterns, by
    priority, the rightmost match first, the first that converts (`extract_target_from_pred`, which keeps no
    record of which pattern won). The converted texts are cached by math-verify, so this costs little."""
    from math_verify import LatexExtractionConfig
    from math_verify.parser import extract_match, get_extraction_regexes

    patterns = [(priority, pattern, config) for regexes, config in get_extraction_regexes(configs)
                for pattern, priority in regexes]
    for _, tier in groupby(sorted(patterns, key=lambda p: p[0]), key=lambda p: p[0]):
        matches = sorted(((m, pattern, config) for _, pattern, config in tier for m in pattern.finditer(response)),
                         key=lambda m: (m[0].end(), -m[0].start()), reverse=True)
        for match, pattern, config in matches:
            value, text = extract_match(match, config)
            if value is not None:
                if not isinstance(config, LatexExtractionConfig):
                    return text, "expr"
                boxed = r"\\boxed" in pattern.pattern  # only its \boxed patterns name it
                return text, "latex_boxed" if boxed else "latex"
    return None


def judge_math(response: str, answer: str) -> Verdict:
    """math-verify on the whole response (its extraction picks the answer) against the reference, which may be
    LaTeX with or without `$...$`, or a plain number. Call it in a worker process: it can run for ever on
    adversarial input. A reference that math-verify cannot read raises (reason `error`)."""
    from math_verify import parse, verify

    configs = _math_configs()
    reference = answer.strip()
    bare = not _LATEX_ENVIRONMENT.search(reference) and not _PLAIN_NUMBER.fullmatch(reference)
    gold = parse(f"${reference}$" if bare else reference, configs, parsing_timeout=None)
    if not gold:
        raise ValueError(f"math-verify finds no answer in the reference {answer!r}")
    pred = parse(response, configs, parsing_timeout=None)
    if not pred:
        return Verdict(None, False, "no_answer")
    correct = bool(verify(gold, pred, timeout_seconds=None))
    if isinstance(pred[0], str):  # math-verify matched text it could not convert and compares that text
        text, extraction = pred[0], "unparsed"
    else:
        text, extraction = _winning_match(response, configs) or (str(pred[-1]), None)
    return Verdict(text, correct, "correct" if correct else "wrong", extraction)


def _import_math_verify() -> None:
    import logging

    import math_verify  # noqa: F401  (sympy and the LaTeX parser take seconds to import)

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call that we time out ourselves


def _math_version() -> str:
    try:
        return f"2+math-verify-{package_version('math-verify')}"
    except Exception:  # not installed: the verifier fails when used, with its import error
        return "2+math-verify-missing"


TOY_ADDITION = Verifier("toy_addition", "1", judge_toy_addition)
MATH_VERIFY = Verifier("math_verify", _math_version(), judge_math, isolated=True, prepare=_import_math_verify)
VERIFIERS = {v.name: v for v in (TOY_ADDITION, MATH_VERIFY)}


def get_verifier(name: str) -> Verifier:
    if name not in VERIFIERS:
        raise ValueError(f"unknown verifier {name!r}; choose one of {sorted(VERIFIERS)}")
    return VERIFIERS[name]


def verifier_for(spec: str, dataset: str) -> Verifier:
    """The verifier that judges `dataset` under `spec` ("name" or "dataset=name,...,*=name")."""
    if "=" not in spec:
        return get_verifier(spec.strip())
    choice = dict(part.split("=", 1) for part in spec.replace(" ", "").split(",") if part)
    name = choice.get(dataset, choice.get("*"))
    if name is None:
        raise ValueError(f"verifier spec {spec!r} names no verifier for dataset {dataset!r}; "
                         f"add `{dataset}=<verifier>` or `*=<verifier>` (verifiers: {sorted(VERIFIERS)})")
    return get_verifier(name)


def toy_reward(response: str, answer: str) -> float:
    return float(judge_toy_addition(response, answer).correct)
