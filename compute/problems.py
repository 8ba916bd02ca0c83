"""Problems: read a file of math problems into the `problems` table (dataset, problem_id, prompt, answer).

Knows the column conventions of the common math sets; knows nothing about models or verifiers.
Column names match in any case; where several candidates exist, the first listed wins.

  files       .jsonl or .json with one JSON object per line (UTF-8, with or without a BOM; CRLF and blank
              lines are fine), a .json holding one array of objects, .parquet; .jsonl.gz / .json.gz gzipped.
  prompt      prompt, problem, question. A chat (a list of {"role", "content"} messages, as in verl's
              parquet files) gives the content of its last user message.
  answer      answer, gt_answer, final_answer, reward_model.ground_truth (verl), else the last \\boxed{...}
              of `solution` (MATH, NuminaMath), nested braces included. An answer whose last line is
              `#### 42` (GSM8K) gives what follows ####, without the thousands commas GSM8K's own
              grader removes (`#### 1,000` -> 1000). Numbers become strings; a list is joined with ", ".
  problem_id  problem_id, id, unique_id, else the row number (from 0).
  dataset     the `dataset` column, else the file's name up to its first dot.

A file that cannot be read raises one error naming the file, the line (or row), what is wrong and the fix.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import polars as pl

COLUMNS = ("dataset", "problem_id", "prompt", "answer")
PROMPT_KEYS = ("prompt", "problem", "question")
ANSWER_KEYS = ("answer", "gt_answer", "final_answer", "reward_model.ground_truth", "solution")
ID_KEYS = ("problem_id", "id", "unique_id")
BRACES = re.compile(r"[{}]")
GSM8K_FINAL = re.compile(r"(?:^|\n)####\s*(.*?)\s*$")  # `#### 42` as the last line
GSM8K_NUMBER = re.compile(r"-?[0-9.,]+")  # what GSM8K's grader reads after ####, commas then dropped
ONE_OBJECT = 'each line must be one JSON object, e.g. {"problem": "What is 2+3?", "answer": "5"}'
LATEX_HINT = "; inside JSON strings a backslash is written twice, as in \\\\frac or \\\\sqrt"


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` in `text`, nested braces included; None without a whole one."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, open_at = 0, start + len("\\boxed")
    for brace in BRACES.finditer(text, open_at):
        depth += 1 if brace[0] == "{" else -1
        if depth == 0:
            return text[open_at + 1:brace.start()]
    return None


def _read_rows(path: Path) -> list[tuple[str, dict]]:
    """(where, row) pairs, `where` being "line 3", "row 3" or "item 3" for error messages."""
    gzipped = path.name.lower().endswith(".gz")
    kind = path.name.lower().removesuffix(".gz").rsplit(".", 1)[-1]
    if kind == "parquet" and not gzipped:
        try:
            rows = pl.read_parquet(path).to_dicts()
        except Exception as e:  # polars raises several kinds of error for a file that is not Parquet
            raise ValueError(f"problems file {path} is not a readable Parquet file ({e}); write it again, "
                             "e.g. with polars' write_parquet or datasets' to_parquet") from None
        return [(f"row {i}", row) for i, row in enumerate(rows, 1)]
    if kind not in ("jsonl", "json"):
        raise ValueError(f"problems file {path}: unsupported format; use .jsonl, .json, .parquet or .jsonl.gz")
    data = path.read_bytes()
    if gzipped:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"problems file {path} is not a readable gzip file ({e}); compress it again "
                             "with gzip or drop the .gz suffix") from None
    try:
        text = data.decode("utf-8-sig")  # -sig: a byte order mark is dropped
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ValueError(f"problems file {path} line {line}: not UTF-8 text; save the file as UTF-8") from None
    if text.lstrip().startswith("["):
        return _json_array(path, text)
    rows = []
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"problems file {path} line {n}: not valid JSON ({e.msg} at column {e.colno}, near "
                             f"`{line[max(e.pos - 30, 0):e.pos + 10].strip()}`); {ONE_OBJECT}"
                             + (LATEX_HINT if e.msg.startswith("Invalid \\escape") else "")) from None
        if not isinstance(row, dict):
            raise ValueError(f"problems file {path} line {n}: not a JSON object; {ONE_OBJECT}")
        rows.append((f"line {n}", row))
    return rows


def _json_array(path: Path, text: str) -> list[tuple[str, dict]]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"problems file {path} line {e.lineno}: not valid JSON ({e.msg} at column {e.colno}); "
                         "a .json file holds one array of objects, or one object per line") from None
    bad = next((i for i, item in enumerate(items, 1) if not isinstance(item, dict)), None)
    if bad:
        raise ValueError(f"problems file {path}: item {bad} of the array is not a JSON object; "
                         'each item must be one, e.g. {"problem": "What is 2+3?", "answer": "5"}')
    return [(f"item {i}", item) for i, item in enumerate(items, 1)]


def _value(row, dotted: str):
    """The row's value at a dotted key path, names matched in any case; None where absent."""
    for part in dotted.split("."):
        if not isinstance(row, dict):
            return None
        row = row[part] if part in row else next((v for k, v in row.items() if k.lower() == part), None)
    return row


def _pick(rows: list[tuple[str, dict]], keys: tuple[str, ...], present: set[str]) -> str | None:
    """The first of `keys` that some row holds; `present`: every row's top-level keys, lower-cased."""
    return next((key for key in keys if key.split(".")[0] in present
                 and any(_value(row, key) is not None for _, row in rows)), None)


def _prompt(value, where: str, path: Path):
    if not isinstance(value, list):
        return value
    users = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ValueError(f"problems file {path} {where}: the prompt is a list without a user message; give "
                         'a string or a chat such as [{"role": "user", "content": "What is 2+3?"}]')
    return users[-1]


def _answer(value, key: str, where: str, path: Path):
    if key == "solution":
        boxed = last_boxed(value) if isinstance(value, str) else None
        if boxed is None:
            raise ValueError(f"problems file {path} {where}: the solution has no \\boxed{{...}} answer; box its "
                             "final answer or add an 'answer' column")
        return boxed
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    final = GSM8K_FINAL.search(value) if isinstance(value, str) else None
    if final:
        return final[1].replace(",", "") if GSM8K_NUMBER.fullmatch(final[1]) else final[1]
    return value


def load_problems(url: str, max_problems: int = 0) -> pl.DataFrame:
    """Read `url` (see the module's docstring for the accepted formats and columns) into the table's columns.

    Raises one clear error for a missing or unreadable file, missing columns, empty prompts/answers,
    duplicate ids or an empty file.
    """
    path = Path(url)
    if not path.exists():
        raise FileNotFoundError(f"problems file {url} does not exist; set PROBLEMS_URL to a .jsonl or .parquet file")
    rows = _read_rows(path)
    if not rows:
        raise ValueError(f"problems file {url} is empty; it needs rows with a prompt and an answer")
    present = {key.lower() for _, row in rows for key in row}
    prompt_key, answer_key, id_key = (_pick(rows, keys, present) for keys in (PROMPT_KEYS, ANSWER_KEYS, ID_KEYS))
    for key, candidates in ((prompt_key, PROMPT_KEYS), (answer_key, ANSWER_KEYS)):
        if key is None:
            raise ValueError(f"problems file {url} lacks column {candidates[0]!r} (or {', '.join(candidates[1:])}; "
                             f"any case); found {sorted({k for _, row in rows for k in row})}")
    records = [(_value(row, "dataset") if "dataset" in present else None, _value(row, id_key) if id_key else None,
                _prompt(_value(row, prompt_key), where, path),
                _answer(_value(row, answer_key), answer_key, where, path)) for where, row in rows]
    frame = pl.DataFrame([[None if v is None else str(v) for v in record] for record in records],
                         schema={c: pl.String for c in COLUMNS}, orient="row")
    frame = frame.with_columns(pl.coalesce("dataset", pl.lit(path.name.split(".")[0])),
                               pl.coalesce("problem_id", pl.int_range(pl.len()).cast(pl.String)))
    dupes = frame.filter(pl.struct("dataset", "problem_id").is_duplicated())["problem_id"].unique().to_list()
    if dupes:
        raise ValueError(f"problems file {url} repeats problem_id(s) {sorted(dupes)[:5]}; ids must be unique")
    empty = [where for (where, _), p, a in zip(rows, frame["prompt"], frame["answer"]) if not p or not a]
    if empty:
        raise ValueError(f"problems file {url} has {len(empty)} row(s) with an empty prompt or answer "
                         f"({', '.join(empty[:5])}); fill them in or remove them")
    return frame.head(max_problems) if max_problems else frame
