"""Verifiers: turn a response text and a reference answer into a verdict (extracted answer, correct, reason).

Each verifier has a name and a version that are recorded with every score. `toy_addition` checks the toy
world's answers in process. `math_verify` parses `\\boxed{}` answers with Hugging Face's math-verify and
compares them symbolically; it runs in worker processes with a hard timeout per answer (math-verify's own
SIGALRM timeouts only work on a main thread), and an answer that takes too long scores as incorrect with
reason `timeout`. Which verifier judges which dataset is a spec such as `math_verify` or
`math500=math_verify,toy=toy_addition,*=math_verify`. Knows nothing about models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as package_version

from compute.workers import TIMEOUT, run_with_timeout

REASONS = ("correct", "wrong", "no_answer", "timeout", "error")


@dataclass(frozen=True)
class Verdict:
    extracted_answer: str | None
    correct: bool
    reason: str  # one of REASONS


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
    return Verdict(got, correct, "correct" if correct else "wrong")


def judge_math(response: str, answer: str) -> Verdict:
    """math-verify: the response's last `\\boxed{}` answer (else its last expression) against the reference,
    which may be LaTeX or plain. Call it in a worker process: it can run for ever on adversarial input."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold_text = answer if "$" in answer or "\\boxed" in answer else f"${answer}$"
    gold = parse(gold_text, parsing_timeout=None)
    if not gold:
        gold = parse(answer, extraction_config=[ExprExtractionConfig()], parsing_timeout=None)
    last_boxed = response.rfind("\\boxed")  # math-verify would merge every boxed answer into a set
    pred = parse(response[last_boxed:] if last_boxed >= 0 else response,
                 extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
                 parsing_timeout=None)
    if not pred:
        return Verdict(None, False, "no_answer")
    correct = bool(verify(gold, pred, timeout_seconds=None))
    return Verdict(str(pred[-1]), correct, "correct" if correct else "wrong")


def _import_math_verify() -> None:
    import logging

    import math_verify  # noqa: F401  (sympy and the LaTeX parser take seconds to import)

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns on every call that we time out ourselves


def _math_version() -> str:
    try:
        return f"1+math-verify-{package_version('math-verify')}"
    except Exception:  # not installed: the verifier fails when used, with its import error
        return "1+math-verify-missing"


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
