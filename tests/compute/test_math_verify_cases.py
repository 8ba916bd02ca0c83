"""Math-Verify's own regression cases through `judge_math`, with the verdicts its tests expect.

Each case is (gold, prediction, expected) copied from huggingface/Math-Verify's tests (file named above each
group). Its helper `compare_strings` (tests/test_all.py) parses both sides with LaTeX extraction, `\\boxed{}`
first, and plain-expression extraction, as `judge_math` does; we call judge_math(prediction, gold).
The cases marked "v1: wrong" are the ones the first math verifier scored wrong: it cut the response at its last
`\\boxed`, so several boxed answers (solution pairs, sets, `x_1 = ..., x_2 = ...`) kept only the last one, and
it put a bare reference in `$...$`, so the decimal comma of `1,22` made it the set {1, 22}.
"""

import pytest

from compute.verifiers import MATH_VERIFY, Verdict, judge_math


def compare_strings(gold: str, pred: str) -> bool:
    """math-verify called as its tests call it (tests/test_all.py, `compare_strings` with its defaults)."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return verify(parse(gold, configs), parse(pred, configs))

MATH_VERIFY_CASES = [
    # tests/test_numina_cases.py
    (r"$(2,1),(1,2),(-1,-20),(-20,-1)$",
     "solutions are:\n\n\\[\n\\boxed{(1, 2)}, \\boxed{(2, 1)}, \\boxed{(-1, -20)}, \\boxed{(-20, -1)}\n\\]",
     1),  # four boxed solution pairs are one set of pairs (v1: wrong, kept only (-20, -1))
    (r"\(\boxed{1}\) and \(\boxed{-2}\).", r"$\boxed{-2,1}$.", 1),  # a gold of two boxed roots, one boxed set
    (r"$-12;-11;-10;-8;-7;-6$", r"$\boxed{\{-12, -11, -10, -8, -7, -6\}}$", 1),  # `;` list against a set
    (r"$AB=4,CD=5$", r"$\boxed{4, 5}$", 1),  # named lengths against their values
    (r"$(11,7)or(7,11)$", r"$\boxed{(7,11),\ (11,7)}$", 1),  # pairs joined by "or", in another order
    (r"$p=5,q=2;p=7,q=2$", r"$(5,2),(7,2)$", 1),  # assignments against solution pairs
    (r"$(37,3,3),(17,3,3,7),(3,37,3,13),(3,17,3,7),(3,3,2,3)$",
     r"$\boxed{(3, 37, 3, 13), (3, 17, 3, 7), (3, 3, 2, 3), (3,17,3,7), (17,3,3,7), (37,3,3,13)}$",
     0),  # one quadruple of the gold lacks an entry: the sets differ
    (r"$1$ and $2$ and $3$", r"$\boxed{1,2,3}$", 1),  # three inline answers joined by "and"
    (r"\boxed{x = -5,\ p = \frac{14}{3}} ", r"$\boxed{-5, \frac{14}{3}}$", 1),  # boxed assignments, bare values
    (r"$0<f(x)<1$", r"$(0,1)$", 1),  # a double inequality against an open interval
    (r"$1\leq|z|\leq \frac{3}{2}$", r"$z \in \left[-\frac{3}{2}, -1\right] \cup \left[1, \frac{3}{2}\right]$",
     1),  # an inequality in |z| against a union of intervals
    (r"$d$", r"$\text{E}$", 0),  # different letters
    # tests/test_open_thoughts.py
    (r"$$(2, 2), (6, 2)$$", r"$$\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}$$",
     1),  # two boxed pairs joined by "and" (v1: wrong)
    (r"$$(98, 2), (99, 503)$$", r"$$\boxed{(98, 2)} \quad \text{and} \quad \boxed{(99, 503)}$$",
     1),  # the same with larger numbers (v1: wrong)
    (r"$$(3, 3), (1, 1)$$", r"$$\boxed{(3, 3)} \text{ for part (a) and } \boxed{(1, 1)}$$",
     1),  # two parts' boxed answers, words between them (v1: wrong)
    (r"$$k = 45, n = 2$$", r"$$\boxed{k = 45} \quad \text{and} \quad \boxed{n = 2}$$",
     1),  # two boxed assignments (v1: wrong)
    (r"$${1,2,3}$$", r"\boxed{1} and \boxed{2} and \boxed{3}", 1),  # three boxed numbers joined by "and" (v1: wrong)
    (r"$${1,2,3}$$", r"\boxed{1},\boxed{2},\boxed{3}", 1),  # three boxed numbers joined by commas (v1: wrong)
    (r"$x_{1}=10^{\frac{-5+\sqrt{13}}{6}},\quadx_{2}=10^{\frac{-5-\sqrt{13}}{6}}$",
     r"$\boxed{10^{\frac{\sqrt{13} - 5}{6}}} \quad \text{and} \quad \boxed{10^{-\frac{5 + \sqrt{13}}{6}}}$",
     1),  # `x_1 = ..., x_2 = ...` against two boxed roots in another form (v1: wrong)
    (r"$x_{1}=\frac{1}{2}+\frac{31\sqrt{5}}{216},\quadx_{2}=\frac{1}{2}-\frac{31\sqrt{5}}{216}$",
     r"$\boxed{\dfrac{108 + 31\sqrt{5}}{216}} \quad \text{and} \quad \boxed{\dfrac{108 - 31\sqrt{5}}{216}}$",
     1),  # `x_1 = ..., x_2 = ...` against two boxed fractions (v1: wrong)
    (r"$y_{1}=-2 x^{2}+4 x+3, y_{2}=3 x^{2}+12 x+10$",
     r"\($y_1 = \boxed{-2(x - 1)^2 + 5} \) and \( y_2 = \boxed{3(x + 2)^2 - 2} \) ",
     1),  # two boxed polynomials in vertex form (v1: wrong)
    (r"\boxed{1} papers and \boxed{2} bins", r"$\boxed{1,2}$", 1),  # a gold of two boxed answers, one boxed set
    (r"\boxed{1} no no no no no \boxed{2}", r"$\boxed{1,2}$", 0),  # gold boxes far apart: only the last, 2
    (r"$$-793 < a < 10$$", r"$$(-793, 10)$$", 1),  # a double inequality against an open interval
    (r"$$(1, +\infty)$$", r"$$(1, +\infty)$$", 1),  # an interval to infinity
    # tests/test_all.py, test_number_extraction (its helper reads both sides as plain expressions only; with
    # LaTeX extraction added nothing changes, as neither side holds LaTeX)
    (r"1,22", r"1.22", 1),  # a decimal comma in the gold (v1: wrong, read the gold as {1, 22})
    (r"0,111", r"0.111", 1),  # a decimal comma, not a thousands separator
    (r"1000.99", r"1000,99", 1),  # a decimal comma in the prediction
    (r"7425000", r"7,425,000", 1),  # thousands separators
    # tests/test_all.py, test_sets_handling and test_simple_fraction_notation
    (r"$[0,9)$", r"$[0,1)$", 0),  # intervals with different ends
    (r"$(0,9)$", r"$[0,9)$", 0),  # open against half-open
    (r"10/9", r"\frac{10}{9}", 1),  # a plain fraction against \frac
    (r"-10/9", r"-\frac{10}{9}", 1),  # the same, negative
    # tests/test_all.py, test_math_extraction_additional_cases
    (r"$\boxed{1}\boxed{2}$", r"$\boxed{1,2}$", 1),  # two adjacent boxes against one boxed set
    (r"$(3,1)$", r"${1,3}$", 0),  # an ordered pair is not a set
    (r"$(1,3)$", r"${1,3}$", 1),  # ... unless the order agrees
    (r"\(\boxed{\text{C}}\).", r"$\boxed{\text{(C)}}.$", 1),  # a multiple-choice letter in parentheses
]


@pytest.mark.parametrize("gold,pred,expected", MATH_VERIFY_CASES, ids=[str(i) for i in range(len(MATH_VERIFY_CASES))])
def test_math_verify_cases(gold, pred, expected):
    """In process: math-verify's own verdict on each of its cases, unchanged by our wrapper."""
    assert judge_math(pred, gold).correct == compare_strings(gold, pred) == bool(expected)


def test_math_verify_cases_in_worker_processes():
    """The same verdicts through the isolated path the study uses: worker processes under a hard timeout."""
    verdicts = MATH_VERIFY.judge_all([(pred, gold) for gold, pred, _ in MATH_VERIFY_CASES], timeout_s=20.0, workers=2)
    assert [v.correct for v in verdicts] == [bool(expected) for _, _, expected in MATH_VERIFY_CASES]
    assert {v.reason for v in verdicts} == {"correct", "wrong"}


def test_the_last_boxed_answer_alone_was_scored_wrong():
    """Version 1 handed math-verify only the text from the last `\\boxed` on, so a response with two boxed
    solution pairs kept one pair and was wrong against the gold's two; the whole response is right, and the
    answer comes from math-verify's boxed pattern, both pairs in it."""
    gold, pred = r"$$(2, 2), (6, 2)$$", r"$$\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}$$"
    assert not compare_strings(gold, pred[pred.rfind("\\boxed"):])  # what version 1 judged
    assert judge_math(pred, gold) == Verdict("(2, 2),(6, 2)", True, "correct", "latex_boxed")


@pytest.mark.parametrize("pred,expected", [
    (r"\boxed{1.22}", True),   # the decimal the reference means
    (r"\boxed{1,22}", False),  # boxed LaTeX with a comma is the set {1, 22}, not the number
    (r"1.22", True),           # test_number_extraction's own prediction
])
def test_a_decimal_comma_reference_is_a_number(pred, expected):
    """A bare `1,22` goes to math-verify as it is, read as 1.22 the way its test_number_extraction reads it;
    version 1 wrapped it in `$...$`, where it is the set {1, 22}. The verdicts are math-verify's own, with gold
    and prediction parsed as its tests parse them."""
    from math_verify import parse

    assert str(parse("$1,22$")[0]) == "{1, 22}"  # what version 1 compared against
    assert judge_math(pred, "1,22").correct == compare_strings("1,22", pred) == expected
