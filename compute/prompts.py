"""How a problem becomes the tokens a model reads, and where its response ends.

`PromptTemplate` renders a problem as RLVR runs train on it: `raw` (the problem text itself), `chat` (the
tokenizer's own chat template, with an optional system prompt, ending in the assistant's turn), or a format
string with one `{problem}` placeholder. `PromptTemplate.hash` (the tables' `template_hash`) identifies a
rendering: the setting and, for `chat`, the tokenizer's template text.

`Stops` ends a response at any of the model's EOS ids (`stop_ids`: every id of its generation config, plus
the tokenizer's) or once the response's decoded text contains a stop string; the token that ended it is
kept, as in Hugging Face `generate`. `Ends` applies them to one batch, step by step, row by row, so a row's
end depends on its own tokens only. Knows nothing about tables, the lake, or how tokens are drawn.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

KINDS = ("raw", "chat", "format")
FINISH_REASONS = ("eos", "stop_string", "length")
EXAMPLE_FORMAT = "Question: {problem}\nAnswer:"


@dataclass(frozen=True)
class PromptTemplate:
    kind: str = "raw"  # raw | chat | format
    text: str = ""  # format: the format string, with {problem}
    system: str = ""  # chat: the system prompt ("" = none; the chat template may add its own default)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"prompt template kind {self.kind!r}: choose one of {KINDS}")
        if self.kind == "format":
            _check_format(self.text)
        elif self.text:
            raise ValueError(f"a {self.kind} prompt template takes no format string (got {self.text!r})")
        if self.system and self.kind != "chat":
            raise ValueError(f"SHIFTLAKE_SYSTEM_PROMPT is set but SHIFTLAKE_PROMPT_TEMPLATE is {self.kind}: a system "
                             "prompt goes into a chat template only (set SHIFTLAKE_PROMPT_TEMPLATE=chat, or unset it)")

    @classmethod
    def parse(cls, setting: str, system: str = "") -> PromptTemplate:
        """`raw` (or empty), `chat`, or a format string containing `{problem}`, used verbatim."""
        if setting.strip() in ("", "raw", "chat"):
            return cls(setting.strip() or "raw", system=system)
        if "{" not in setting:
            raise ValueError(f"SHIFTLAKE_PROMPT_TEMPLATE={setting!r}: choose raw, chat, or a format string with "
                             f"{{problem}} such as {EXAMPLE_FORMAT!r}")
        return cls("format", setting, system)

    @property
    def setting(self) -> str:
        """The configured template as one JSON text: what the assets record and staleness compares."""
        return json.dumps({"kind": self.kind, "text": self.text, "system": self.system}, sort_keys=True)

    def render(self, tokenizer, problem: str) -> tuple[str, list[int]]:
        """The prompt text and its token ids (no special tokens added beyond those the text holds)."""
        if self.kind == "raw":
            text = problem
        elif self.kind == "format":
            text = self.text.format(problem=problem)
        else:
            _require_chat_template(tokenizer)
            messages = [{"role": "system", "content": self.system}] if self.system else []
            text = tokenizer.apply_chat_template(messages + [{"role": "user", "content": problem}],
                                                 add_generation_prompt=True, tokenize=False)
        return text, tokenizer.encode(text, add_special_tokens=False)

    def hash(self, tokenizer) -> str:
        """`template_hash`: the setting and, for chat, the tokenizer's chat template text."""
        chat = tokenizer.chat_template if self.kind == "chat" else None
        blob = json.dumps({"kind": self.kind, "text": self.text, "system": self.system, "chat_template": chat},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_format(text: str) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as e:
        raise ValueError(f"SHIFTLAKE_PROMPT_TEMPLATE={text!r} is not a format string ({e}); write literal braces "
                         "as {{ and }}") from None
    others = sorted({f or "{}" for f in fields} - {"problem"})
    if others or not fields:
        what = f"has other placeholders ({', '.join(others)})" if others else "has no {problem} placeholder"
        raise ValueError(f"SHIFTLAKE_PROMPT_TEMPLATE={text!r} {what}: a format string takes {{problem}} only, "
                         f"e.g. {EXAMPLE_FORMAT!r}; write literal braces as {{{{ and }}}}")


def _require_chat_template(tokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"SHIFTLAKE_PROMPT_TEMPLATE=chat, but the tokenizer of {tokenizer.name_or_path} has no "
                         "chat_template (base models often have none). Use SHIFTLAKE_PROMPT_TEMPLATE=raw, or a format "
                         f"string such as {EXAMPLE_FORMAT!r}, or a model whose tokenizer has a chat template.")


def parse_stop_strings(text: str) -> tuple[str, ...]:
    """SHIFTLAKE_STOP: a JSON list of strings, e.g. `["</answer>", "\\n\\nQuestion:"]`; empty for none."""
    if not text.strip():
        return ()
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ValueError(f"SHIFTLAKE_STOP={text!r}: expected a JSON list of non-empty strings, "
                         "e.g. '[\"</answer>\", \"\\n\\nQuestion:\"]'")
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True)
class PromptSettings:
    """How the study prompts (the template) and where responses end besides EOS (the stop strings)."""

    template: PromptTemplate = PromptTemplate()
    stop_strings: tuple[str, ...] = ()

    @classmethod
    def parse(cls, template: str, system: str, stop: str) -> PromptSettings:
        return cls(PromptTemplate.parse(template, system), parse_stop_strings(stop))

    def recorded(self) -> dict[str, str]:
        """The settings the sampling assets record as metadata: a partition that recorded other values is stale
        (`orchestration.automation.staleness.find_stale(configured=...)`)."""
        return {"prompt_template": self.template.setting, "stop_strings": json.dumps(list(self.stop_strings))}

    def metadata(self, tokenizer) -> dict[str, str]:
        return {**self.recorded(), "template_hash": self.template.hash(tokenizer)}


def stop_ids(generation_config, tokenizer) -> frozenset[int]:
    """Every EOS id of a model's generation config (one id or a list: Qwen2.5's instruct models list
    <|im_end|> and <|endoftext|>) and the tokenizer's EOS id."""
    listed = getattr(generation_config, "eos_token_id", None)
    ids = [] if listed is None else [listed] if isinstance(listed, int) else list(listed)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError(f"{tokenizer.name_or_path}: neither its generation config nor its tokenizer names an EOS "
                         "token, so responses could only end at max_new_tokens; set eos_token_id in "
                         "generation_config.json")
    return frozenset(int(i) for i in ids)


class Stops:
    """What ends a response: any of `ids` (the id is its last token), or, after a token, a decoded response
    text (`tokenizer.decode`, as stored in `response_text`) that contains one of `strings` (that token is its
    last and may carry characters beyond the string), as Hugging Face's `StopStringCriteria` decides, except
    that only the response is read: a string that starts in the prompt does not count.

    Only rows whose new token could complete a stop string are decoded (`may_complete`): a token whose own
    text holds the last character of some stop string, or an undecodable byte fragment. That narrowing is exact
    for tokenizers whose decoding is additive up to whitespace and byte fragments; it is switched off (every
    row decoded at every step) for stop strings ending in whitespace and for tokenizers that clean up spaces.
    """

    def __init__(self, ids: int | Iterable[int], strings: Sequence[str] = (), tokenizer=None):
        self.ids = frozenset([int(ids)] if isinstance(ids, numbers.Integral) else (int(i) for i in ids))
        self.strings = tuple(strings)
        if any(not s for s in self.strings):
            raise ValueError("an empty stop string would end every response at once")
        if self.strings and tokenizer is None:
            raise ValueError("stop strings need the tokenizer that decodes the responses")
        self.tokenizer = tokenizer
        import torch  # here, not at the top: the code location imports this module without loading torch

        self.id_tensor = torch.tensor(sorted(self.ids), dtype=torch.long)

    @classmethod
    def of(cls, stops: Stops | int | Iterable[int]) -> Stops:
        return stops if isinstance(stops, Stops) else cls(stops)

    @cached_property
    def _narrowing(self) -> torch.Tensor | None:
        """[len(tokenizer)] bool: which tokens may complete a stop string; None when any token may."""
        import torch

        tok = self.tokenizer
        if any(s[-1].isspace() for s in self.strings) or getattr(tok, "clean_up_tokenization_spaces", False):
            return None
        last = {s[-1] for s in self.strings} | {"\ufffd"}
        texts = tok.batch_decode([[i] for i in range(len(tok))])
        return torch.tensor([not t or not last.isdisjoint(t) for t in texts], dtype=torch.bool)

    def may_complete(self, tokens: torch.Tensor) -> torch.Tensor:
        """[rows] bool: could each row's new token (CPU ids) have completed a stop string?"""
        import torch

        table = self._narrowing
        if table is None:
            return torch.ones_like(tokens, dtype=torch.bool)
        inside = tokens < len(table)  # ids past the tokenizer (padded embeddings) are checked in full
        return ~inside | table[tokens.clamp(0, len(table) - 1)]

    def matched(self, response: list[int]) -> str | None:
        """The first stop string (in configured order) that the decoded response contains, if any."""
        text = self.tokenizer.decode(response)
        return next((s for s in self.strings if s in text), None)


class Ends:
    """The ends of one batch's rows as decoding goes. After each step, `update(tokens, responses)` with the
    step's tokens [rows] (CPU), already appended to the responses of the rows that were not done, marks the rows
    they ended; `done` [rows] says which rows have ended, `reasons[i]` is row i's (finish_reason, stop):
    ("eos", "<id>"), ("stop_string", "<string>") or ("length", None)."""

    def __init__(self, stops: Stops | int | Iterable[int], rows: int):
        import torch

        self.stops = Stops.of(stops)
        self.done = torch.zeros(rows, dtype=torch.bool)
        self.reasons: list[tuple[str, str | None]] = [("length", None)] * rows

    def update(self, tokens: torch.Tensor, responses: list[list[int]]) -> torch.Tensor:
        import torch

        live = ~self.done
        ended = live & torch.isin(tokens, self.stops.id_tensor)
        for i in ended.nonzero().flatten().tolist():
            self.reasons[i] = ("eos", str(int(tokens[i])))
        if self.stops.strings:
            for i in (live & ~ended & self.stops.may_complete(tokens)).nonzero().flatten().tolist():
                if (s := self.stops.matched(responses[i])) is not None:
                    self.reasons[i] = ("stop_string", s)
                    ended[i] = True
        self.done |= ended
        return self.done

    def feed(self, columns: torch.Tensor, responses: list[list[int]]) -> torch.Tensor:
        """Apply `update` to each column of `columns` [rows, steps] (CPU), appending each step's token to the
        responses of the rows not yet done: a decoding loop that keeps its tokens on the device calls this every
        few steps with the steps since its last call, with the same result as calling `update` at every step."""
        for tokens in columns.unbind(1):
            live = (~self.done).nonzero().flatten()
            for i, token in zip(live.tolist(), tokens[live].tolist()):
                responses[i].append(token)
            self.update(tokens, responses)
        return self.done
