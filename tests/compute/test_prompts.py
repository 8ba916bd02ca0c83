"""Prompt templates: what each setting renders, the errors a bad setting gets, what the template hash covers,
and that rollouts sample from the rendered prompt (raw: exactly today's prompt ids and tokens)."""

import string

import polars as pl
import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from compute.models import LoadedModel
from compute.prompts import PromptSettings, PromptTemplate, parse_stop_strings
from compute.sampling import SamplingParams, sample
from compute.settings import from_env
from compute.tables import rollout_seed, rollouts
from compute.toyworld.tokenizer import build_tokenizer

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen2.5's chat template without the tool branches: its default system prompt when none is given
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}{%- if message.role != 'system' %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
QWEN_DEFAULT_SYSTEM = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"


def chat_tokenizer(chat_template: str | None = QWEN_TEMPLATE) -> PreTrainedTokenizerFast:
    """A real fast tokenizer built offline: one id per printable character (so every rendered template encodes
    and decodes back exactly, which the toy world's 19 ids cannot do) and Qwen's <|im_start|>/<|im_end|>/
    <|endoftext|> as special tokens, <|im_end|> the EOS, Qwen2.5's chat template."""
    vocab = ["<pad>", *(c for c in string.printable if c not in "\r\x0b\x0c"), *SPECIAL]
    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="<pad>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), "isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens([*SPECIAL, "<pad>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<|im_end|>",
                                  unk_token="<pad>", clean_up_tokenization_spaces=False)
    tok.chat_template = chat_template
    tok.name_or_path = "tiny-chat"
    return tok


def tiny_lm(vocab: int, seed: int) -> LlamaForCausalLM:
    import torch

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=4, intermediate_size=64, tie_word_embeddings=True,
                                        pad_token_id=0, bos_token_id=None, eos_token_id=None)).eval()


@pytest.mark.parametrize("setting,kind,text", [
    ("raw", "raw", ""),                                       # the default: the problem text as it is
    ("", "raw", ""),                                          # unset
    ("chat", "chat", ""),                                     # the tokenizer's own chat template
    ("Question: {problem}\nAnswer:", "format", "Question: {problem}\nAnswer:"),  # the plain QA template
    ("{problem}", "format", "{problem}"),                     # a format string that is just the problem
    ("{problem} Put the answer in \\boxed{{}}.", "format", "{problem} Put the answer in \\boxed{{}}."),  # literal braces
])
def test_settings_parse(setting, kind, text):
    template = PromptTemplate.parse(setting)
    assert (template.kind, template.text) == (kind, text)


@pytest.mark.parametrize("setting,system,match", [
    ("boxed", "", "choose raw, chat, or a format string"),    # a word that is no template
    ("Question: {question}", "", r"other placeholders \(question\)"),  # the wrong name
    ("{problem} ({n} steps)", "", r"other placeholders \(n\)"),        # a second placeholder
    ("{} {problem}", "", r"other placeholders \(\{\}\)"),      # a positional placeholder
    ("{problem.upper}", "", r"other placeholders \(problem.upper\)"),  # attribute access
    ("no placeholder {{here}}", "", "has no {problem} placeholder"),   # only literal braces
    ("{problem", "", "is not a format string"),               # unbalanced
    ("raw", "Be brief.", "a system prompt goes into a chat template only"),  # a system prompt without chat
])
def test_bad_settings_get_one_clear_error(setting, system, match):
    with pytest.raises(ValueError, match=match):
        PromptTemplate.parse(setting, system)


def test_raw_is_todays_prompt():
    """raw renders the problem text and encodes it exactly as the rollouts always did."""
    tok = build_tokenizer()
    text, ids = PromptTemplate().render(tok, "12+34=")
    assert text == "12+34=" and ids == tok.encode("12+34=", add_special_tokens=False)


def test_format_string_renders_the_problem_into_it():
    tok = chat_tokenizer()
    text, ids = PromptTemplate.parse("Question: {problem}\nAnswer:").render(tok, "What is 2+2?")
    assert text == "Question: What is 2+2?\nAnswer:"
    assert tok.decode(ids) == text and len(ids) == len(text)


def test_chat_renders_the_tokenizers_template_with_the_generation_prompt():
    """The rendered text is the chat template's (Qwen's default system prompt when none is set), ends with the
    assistant's turn, and its special tokens encode as single ids."""
    tok = chat_tokenizer()
    text, ids = PromptTemplate("chat").render(tok, "What is 2+2?")
    assert text == QWEN_DEFAULT_SYSTEM + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(ids) == text
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and ids.count(tok.eos_token_id) == 2
    text, _ = PromptTemplate.parse("chat", "Put the final answer in \\boxed{}.").render(tok, "1+1?")
    assert text == ("<|im_start|>system\nPut the final answer in \\boxed{}.<|im_end|>\n"
                    "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n")


def test_chat_without_a_chat_template_names_the_model_and_the_alternatives():
    with pytest.raises(ValueError, match=r"tiny-chat has no chat_template.*SHIFTLAKE_PROMPT_TEMPLATE=raw.*\{problem\}"):
        PromptTemplate("chat").render(chat_tokenizer(chat_template=None), "1+1?")


def test_template_hash_covers_the_setting_and_the_chat_template_text():
    """Any change that renders other prompts changes the hash; raw and format do not read the tokenizer."""
    tok, other = chat_tokenizer(), chat_tokenizer(QWEN_TEMPLATE.replace("helpful", "careful"))
    chat = PromptTemplate("chat")
    assert chat.hash(tok) == PromptTemplate("chat").hash(chat_tokenizer())
    assert chat.hash(tok) != chat.hash(other)                                    # the template file changed
    assert chat.hash(tok) != PromptTemplate("chat", system="Be brief.").hash(tok)  # the system prompt
    assert chat.hash(tok) != PromptTemplate().hash(tok)                           # the kind
    qa = PromptTemplate.parse("Q: {problem}\nA:")
    assert qa.hash(tok) == qa.hash(build_tokenizer()) != PromptTemplate.parse("Q: {problem} A:").hash(tok)
    assert PromptTemplate().hash(tok) == PromptTemplate().hash(build_tokenizer())


@pytest.mark.parametrize("text,expect", [
    ("", ()),                                                 # unset: EOS only
    ('["</answer>"]', ("</answer>",)),
    ('["\\n\\nQuestion:", "</answer>", "\\n\\nQuestion:"]', ("\n\nQuestion:", "</answer>")),  # JSON escapes; duplicates once
])
def test_stop_strings_are_a_json_list(text, expect):
    assert parse_stop_strings(text) == expect


@pytest.mark.parametrize("text", ["</answer>", '"</answer>"', '["</answer>", 3]', '[""]', '{"a": 1}'])
def test_bad_stop_strings_get_one_clear_error(text):
    with pytest.raises(ValueError, match="SHIFTLAKE_STOP=.*JSON list of non-empty strings"):
        parse_stop_strings(text)


def test_settings_come_from_the_environment_and_are_recorded_as_set():
    env = {"SHIFTLAKE_PROMPT_TEMPLATE": "chat", "SHIFTLAKE_SYSTEM_PROMPT": "Be brief.", "SHIFTLAKE_STOP": '["##"]'}
    s = from_env(env)
    prompting = PromptSettings.parse(s.prompt_template, s.system_prompt, s.stop)
    assert prompting == PromptSettings(PromptTemplate("chat", system="Be brief."), ("##",))
    assert prompting.recorded() == {
        "prompt_template": '{"kind": "chat", "system": "Be brief.", "text": ""}', "stop_strings": '["##"]'}
    unset = from_env({})
    assert PromptSettings.parse(unset.prompt_template, unset.system_prompt, unset.stop) == PromptSettings()


PROBLEMS = pl.DataFrame({"dataset": ["toy"] * 3, "problem_id": ["a", "b", "c"],
                         "prompt": ["12+34=", "7+8=", "305+12="], "answer": ["46", "15", "317"]})


def test_raw_rollouts_are_todays_rollouts():
    """With the default settings the rollouts sample from the prompt ids they always did, so a toy-world lake
    written before templates existed holds the very same tokens."""
    from compute.toyworld.train import new_model

    tok = build_tokenizer()
    model = new_model(hidden=32, layers=2, heads=4, intermediate=64, seed=3).eval()
    params = SamplingParams(max_new_tokens=12)
    frame = rollouts(LoadedModel("toy", model, tok), PROBLEMS, "base", "base", 2, params, seed=7, batch_size=4)
    prompts = [tok.encode(p, add_special_tokens=False) for p in PROBLEMS["prompt"] for _ in range(2)]
    seeds = [rollout_seed(7, "toy", pid, k) for pid in PROBLEMS["problem_id"] for k in range(2)]
    before = sample(model, prompts, seeds, params, tok.eos_token_id, tok.pad_token_id)
    assert frame["prompt_ids"].to_list() == prompts
    assert frame["response_ids"].to_list() == [b.response_ids for b in before]
    assert frame["prompt_text"].to_list() == [p for p in PROBLEMS["prompt"] for _ in range(2)]
    assert set(frame["template_hash"]) == {PromptTemplate().hash(tok)}


def test_chat_rollouts_sample_from_the_rendered_prompt():
    tok = chat_tokenizer()
    model = tiny_lm(len(tok), 4)
    prompting = PromptSettings(PromptTemplate("chat", system="Answer briefly."))
    frame = rollouts(LoadedModel("chat", model, tok), PROBLEMS, "base", "base", 1, SamplingParams(max_new_tokens=6),
                     seed=7, batch_size=2, prompting=prompting)
    for text, ids, problem in zip(frame["prompt_text"], frame["prompt_ids"], PROBLEMS["prompt"]):
        assert text == prompting.template.render(tok, problem)[0] and tok.decode(ids) == text
        assert text.endswith(f"<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>assistant\n")
    assert set(frame["template_hash"]) == {prompting.template.hash(tok)}
