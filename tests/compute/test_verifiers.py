"""Verifiers: math-verify on real math answers (in worker processes, under a hard timeout), which extraction
produced each answer, the toy verifier's reasons, the per-dataset choice, and the worker pool's timeouts and
failures. Math-Verify's own regression cases are in test_math_verify_cases.py."""

import os
import time

import pytest

from compute.verifiers import MATH_VERIFY, TOY_ADDITION, judge_toy_addition, verifier_for
from compute.workers import TIMEOUT, WorkerError, run_with_timeout

FAR_APART = ("So far I get \\boxed{5}. Let me check that again more carefully: twice three is six, not five. "
             "So the answer is \\boxed{3}.")

MATH_CASES = [
    # (response, reference answer, correct, reason, extraction)
    ("The answer is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}", True, "correct", "latex_boxed"),  # same LaTeX
    ("So we get \\boxed{0.5}", "\\frac{1}{2}", True, "correct", "latex_boxed"),             # decimal vs fraction
    ("Thus \\boxed{1/2}", "1/2", True, "correct", "latex_boxed"),                           # plain reference
    ("\\boxed{\\dfrac{3}{4}}", "0.75", True, "correct", "latex_boxed"),                     # dfrac vs decimal
    ("\\boxed{\\sqrt{3}/2}", "\\frac{\\sqrt{3}}{2}", True, "correct", "latex_boxed"),       # radical, two notations
    ("The solution set is \\boxed{(1, 2]}", "(1,2]", True, "correct", "latex_boxed"),       # interval
    ("\\boxed{[1, 2)}", "(1,2]", False, "wrong", "latex_boxed"),                            # interval, wrong ends
    ("\\boxed{x \\in [0, \\infty)}", "[0,\\infty)", True, "correct", "latex_boxed"),        # interval with infinity
    ("\\boxed{2, 3}", "3, 2", True, "correct", "latex_boxed"),                              # unordered set of roots
    ("so $x = \\boxed{-7}$", "-7", True, "correct", "latex_boxed"),                         # negative integer
    ("\\boxed{7}", "-7", False, "wrong", "latex_boxed"),                                    # sign error
    ("\\boxed{4}", "3", False, "wrong", "latex_boxed"),                                     # plainly wrong
    ("\\boxed{\\frac{2}{6}}", "\\frac{1}{3}", True, "correct", "latex_boxed"),              # unreduced fraction
    ("\\boxed{2\\pi}", "2\\pi", True, "correct", "latex_boxed"),                            # constant
    ("\\boxed{6.28}", "2\\pi", False, "wrong", "latex_boxed"),                              # rounded constant
    ("I am not sure.", "3", False, "no_answer", None),                                      # nothing to extract
    # two boxed answers a few words apart, joined by a comma, are one answer to math-verify: {5, 3}, not 3.
    # Version 1 scored this correct only because it cut the response at its last \boxed.
    ("first \\boxed{5}, finally \\boxed{3}", "3", False, "wrong", "latex_boxed"),
    (FAR_APART, "3", True, "correct", "latex_boxed"),                     # boxed answers far apart: the last counts
    ("\\boxed{18.90}", "\\$18.90", True, "correct", "latex_boxed"),       # `\$` in a reference is a dollar sign
    ("so $x = 3$", "3", True, "correct", "latex"),                        # no box: the LaTeX environment
    ("The answer is 5.", "5", True, "correct", "expr"),                   # no LaTeX: the plain number
    ("$-[0,1)$", "1", False, "wrong", "unparsed"),                        # matched but not converted: its text
    ("\\boxed{3}", "\\boxed{}", False, "error", None),                    # a reference math-verify cannot read
    ("\\boxed{9^{9^{9^{9}}}}", "1", False, "timeout", None),              # sympy never finishes
]


def test_math_verify_regression_table():
    """All cases in one pool (two workers); the tower of powers runs past the 3 s timeout, is killed,
    and scores as incorrect with reason `timeout` while every other case still gets its verdict, and the
    extraction that produced each answer comes back across the process boundary with it."""
    start = time.monotonic()
    verdicts = MATH_VERIFY.judge_all([(r, a) for r, a, _, _, _ in MATH_CASES], timeout_s=3.0, workers=2)
    for (response, answer, correct, reason, extraction), v in zip(MATH_CASES, verdicts):
        assert (v.correct, v.reason, v.extraction) == (correct, reason, extraction), (response, answer, v)
    assert time.monotonic() - start < 60
    assert MATH_VERIFY.version.startswith("2+math-verify-0.")


@pytest.mark.parametrize("response,answer,extracted,correct,reason,extraction", [
    ("12+34=;46$", "46", "46", True, "correct", "toy_final"),
    ("12+34=;47$", "46", "47", False, "wrong", "toy_final"),
    ("12+34=;46", "46", None, False, "no_answer", None),   # never closed: no answer
])
def test_toy_verifier_reasons(response, answer, extracted, correct, reason, extraction):
    assert judge_toy_addition(response, answer) == (v := judge_toy_addition(response, answer))
    assert (v.extracted_answer, v.correct, v.reason, v.extraction) == (extracted, correct, reason, extraction)
    assert TOY_ADDITION.judge_all([(response, answer)]) == [v]


def test_verifier_chosen_per_dataset():
    assert verifier_for("math_verify", "anything") is MATH_VERIFY
    spec = "toy=toy_addition, *=math_verify"
    assert verifier_for(spec, "toy") is TOY_ADDITION and verifier_for(spec, "math500") is MATH_VERIFY
    with pytest.raises(ValueError, match="no verifier for dataset 'gsm8k'"):
        verifier_for("toy=toy_addition", "gsm8k")
    with pytest.raises(ValueError, match="unknown verifier 'sympy'"):
        verifier_for("sympy", "toy")


def _sleep_then_square(seconds: float, x: int) -> int:
    time.sleep(seconds)
    return x * x


def _fail(message: str) -> None:
    raise RuntimeError(message)


def _die() -> None:
    os._exit(3)


def test_pool_kills_overrunning_calls_and_keeps_going():
    results = run_with_timeout(_sleep_then_square, [(0.0, 2), (30.0, 3), (0.0, 4), (0.0, 5)], timeout_s=1.0, workers=2)
    assert results == [4, TIMEOUT, 16, 25]


def test_pool_reports_errors_and_dead_workers():
    results = run_with_timeout(_fail, [("bad input",)], timeout_s=5.0)
    assert isinstance(results[0], WorkerError) and "RuntimeError: bad input" in str(results[0])
    results = run_with_timeout(_die, [(), ()], timeout_s=5.0, workers=1)
    assert all(isinstance(r, WorkerError) and "worker died" in str(r) for r in results)
