"""Problem files as the common math sets ship them, read from the hand-written files in tests/fixtures/problems.

Each guards one convention: if a reader of the file took the wrong column, kept GSM8K's worked solution as
the answer, cut a nested \\boxed{} short or choked on a BOM or CRLF, the exact prompt/answer asserted below
would differ, and every rollout of that problem would be scored against the wrong reference.
"""

from pathlib import Path

import pytest

from compute.problems import COLUMNS, last_boxed, load_problems

FIXTURES = Path(__file__).parents[1] / "fixtures" / "problems"

ROWS = [  # (file, row, dataset, problem_id, prompt, answer)
    # MATH-500: `answer` wins over `solution`; unique_id is the id; commas of a non-GSM8K answer stay
    ("math500.jsonl", 0, "math500", "test/algebra/1017.json",
     "What is the sum of the two solutions of $x^2 - 7x + 10 = 0$?", "7"),
    ("math500.jsonl", 2, "math500", "test/algebra/2230.json",
     "Solve $|2x - 3| < 5$. Express your answer in interval notation.", "(-1,4)"),
    # MATH (solution only), written with a UTF-8 BOM: the boxed answer whole, nested braces included
    ("competition_math.jsonl", 0, "competition_math", "0", "Compute $\\sin 60^\\circ$.", "\\frac{\\sqrt{3}}{2}"),
    # ... and the last of two boxed expressions
    ("competition_math.jsonl", 1, "competition_math", "1",
     "For how many integers $n$ is $\\frac{12}{n}$ a positive integer?", "6"),
    ("competition_math.jsonl", 2, "competition_math", "2",
     "Which of the following is largest? (A) $2^{10}$ (B) $10^3$ (C) $3^6$", "\\text{(A)}"),
    # GSM8K, CRLF with a blank line: what follows ####, no \r left
    ("gsm8k.jsonl", 0, "gsm8k", "0",
     "Maya buys 3 notebooks at $4 each and a pen for $2. How much does she spend in total?", "14"),
    # ... thousands commas dropped as GSM8K's grader drops them
    ("gsm8k.jsonl", 1, "gsm8k", "1",
     "A school orders 24 boxes of pencils with 50 pencils in each box. How many pencils does it order?", "1200"),
    # ... the blank line is skipped, not a row; negative answers keep their sign
    ("gsm8k.jsonl", 2, "gsm8k", "2", "At noon it was 5 degrees outside. By midnight the temperature had fallen by "
     "8 degrees. What was the temperature at midnight?", "-3"),
    # AIME (Parquet): capitalised ID/Problem/Answer, the int64 answer as a string, not the boxed solution
    ("aime.parquet", 1, "aime", "2023-II-9",
     "Let $a$ and $b$ be positive integers with $a + b = 20$. Find the maximum possible value of $ab + a$.", "110"),
    # verl's GSM8K preprocessing (Parquet): the chat's user message, reward_model.ground_truth
    ("verl.parquet", 0, "verl", "0", "Tom reads 6 pages a day for 3 days. How many pages does he read? "
     "Let's think step by step and output the final answer after \"####\".", "18"),
    # DAPO-Math: a system message before the user's; only the user's is the prompt
    ("verl.parquet", 1, "verl", "1", "Solve the following math problem step by step.\n\nWhat is the sum of the "
     "interior angles of a pentagon, in degrees?\n\nRemember to put your answer on its own line after \"Answer:\".",
     "540"),
    # OlympiadBench as a JSON array: an int id, a one-element final_answer list
    ("olympiadbench.json", 0, "olympiadbench", "2718", "Two distinct cards are drawn from the four cards labelled "
     "1, 2, 3 and 4. What is the probability that their sum is odd?", "$\\frac{2}{3}$"),
    # ... several answers joined
    ("olympiadbench.json", 1, "olympiadbench", "2731", "Find all real numbers $x$ such that $x^2 = 4$.", "$2$, $-2$"),
    # gzipped jsonl, an int gt_answer
    ("rl_prompts.jsonl.gz", 1, "rl_prompts", "1", "What is the remainder when $2^{10}$ is divided by $7$?", "2"),
]


@pytest.mark.parametrize("name, row, dataset, problem_id, prompt, answer", ROWS)
def test_reads_the_common_conventions(name, row, dataset, problem_id, prompt, answer):
    frame = load_problems(str(FIXTURES / name))
    assert frame.columns == list(COLUMNS)
    assert frame.row(row) == (dataset, problem_id, prompt, answer)


@pytest.mark.parametrize("name, height", [
    ("math500.jsonl", 3), ("competition_math.jsonl", 3), ("gsm8k.jsonl", 3), ("aime.parquet", 2),
    ("verl.parquet", 2), ("olympiadbench.json", 2), ("rl_prompts.jsonl.gz", 2)])
def test_every_row_and_nothing_else(name, height):
    """A blank line or a BOM read as a row, or a row lost, changes the count."""
    assert load_problems(str(FIXTURES / name)).height == height


@pytest.mark.parametrize("text, boxed", [
    ("so $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),  # nested braces: not cut at the first }
    ("$\\boxed{3}$, hence $\\boxed{4}$", "4"),  # the last one is the answer
    ("$\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}"),  # escaped set braces balance
    ("the answer is 4", None),  # none
    ("$\\boxed{\\frac{1}{2}$", None),  # unbalanced: not a whole answer
])
def test_last_boxed(text, boxed):
    assert last_boxed(text) == boxed


@pytest.mark.parametrize("name, message", [
    # the line that fails, what is wrong near where, the fix, and the usual cause: LaTeX's single backslashes
    ("broken_line3.jsonl", r"broken_line3\.jsonl line 3: not valid JSON \(Invalid \\escape at column 55, near "
     r"`the denominator of \$\\frac\{1\}\{\\sqrt\{2\}\}\$`\); each line must be one JSON object.*"
     r"a backslash is written twice"),
    # the accepted answer columns, in order, and what the file has
    ("missing_answer.jsonl", r"missing_answer\.jsonl lacks column 'answer' \(or gt_answer, final_answer, "
     r"reward_model\.ground_truth, solution; any case\); found \['problem', 'response'\]"),
    # the row whose solution has no boxed answer, and two ways out
    ("no_boxed.jsonl", r"no_boxed\.jsonl line 2: the solution has no \\boxed\{\.\.\.\} answer; box its final "
     r"answer or add an 'answer' column"),
])
def test_broken_files_name_the_file_line_and_fix(name, message):
    with pytest.raises(ValueError, match=message):
        load_problems(str(FIXTURES / name))


@pytest.mark.parametrize("name, content, message", [
    ("cut.parquet", (FIXTURES / "aime.parquet").read_bytes()[:300], r"cut\.parquet is not a readable Parquet file"),
    ("p.jsonl", b'{"problem": "1+1?", "answer": "2"}\n["1+2?", "3"]\n', r"p\.jsonl line 2: not a JSON object"),
    ("p.jsonl", b'{"problem": "1+1?", "answer": "2"}\n{"problem": "\xe9", "answer": "3"}\n',
     r"p\.jsonl line 2: not UTF-8 text; save the file as UTF-8"),
    ("p.json", b'[\n  {"problem": "1+1?", "answer": "2"},\n  {"problem": "1+2?" "answer": "3"}\n]\n',
     r"p\.json line 3: not valid JSON \(Expecting ',' delimiter"),
    ("p.jsonl", b'{"prompt": [{"role": "system", "content": "Be brief."}], "answer": "3"}\n',
     r"p\.jsonl line 1: the prompt is a list without a user message"),
    ("p.jsonl", b'{"problem": "1+1?", "answer": "2"}\n{"problem": "1+2?", "answer": null}\n',
     r"p\.jsonl has 1 row\(s\) with an empty prompt or answer \(line 2\)"),
    ("p.csv", b"problem,answer\n1+1?,2\n", r"p\.csv: unsupported format; use \.jsonl, \.json, \.parquet"),
])
def test_unreadable_files_say_where_and_why(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_problems(str(tmp_path / name))


def test_prompt_wins_over_problem_and_ids_fall_back_to_row_numbers(tmp_path):
    """The documented priority: a file with both columns is read from the first listed; a row without the id
    column gets its row number."""
    (tmp_path / "both.jsonl").write_text('{"Prompt": "Q: 1+1?", "problem": "1+1?", "final_answer": 2, "id": "a"}\n'
                                         '{"Prompt": "Q: 2+2?", "problem": "2+2?", "final_answer": 4}\n')
    frame = load_problems(str(tmp_path / "both.jsonl"))
    assert frame.rows() == [("both", "a", "Q: 1+1?", "2"), ("both", "1", "Q: 2+2?", "4")]


def test_fixtures_keep_their_bytes():
    """git must not normalise them (see the .gitattributes beside them), or the BOM and CRLF rows test nothing."""
    assert (FIXTURES / "competition_math.jsonl").read_bytes().startswith(b"\xef\xbb\xbf")
    assert b"\r\n\r\n" in (FIXTURES / "gsm8k.jsonl").read_bytes()
    assert max(p.stat().st_size for p in FIXTURES.iterdir() if p.is_file() and p.suffix != ".py") < 2048
