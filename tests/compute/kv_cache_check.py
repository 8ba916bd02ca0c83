"""The KV-cache decoder against a re-encoding reference, runnable with torch and transformers alone.

`python tests/compute/kv_cache_check.py` exits 0 when `decoders.Decoder` drives the installed transformers
correctly (sampling and lockstep cross-sampling give the tokens of re-encoding the prefix every step, for a
Llama and a Qwen2 model), 1 otherwise. The floor test runs it in a venv holding the lowest transformers
that pyproject.toml accepts: a release that ignores the cache keyword must fail here, not sample silently.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from compute.cross_sampling import SwitchRule, cross_sample  # noqa: E402
from compute.decoders import KVCacheError  # noqa: E402
from compute.reencoding import ReencodingDecoder  # noqa: E402
from compute.sampling import SamplingParams, sample  # noqa: E402

VOCAB, EOS, PAD = 29, 3, 0


def tiny(kind: str, seed: int):
    torch.manual_seed(seed)
    shape = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=64, pad_token_id=PAD)
    if kind == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**shape)).eval()
    return LlamaForCausalLM(LlamaConfig(**shape)).eval()


def main() -> int:
    try:
        failures = compare()
    except KVCacheError as e:  # the decoder's own guard caught it
        failures = [str(e)]
    print(f"transformers {transformers.__version__}, torch {torch.__version__}: "
          + ("; ".join(failures) if failures else "KV-cache decoding equals re-encoding (llama, qwen2)"))
    return 1 if failures else 0


def compare() -> list[str]:
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(4, VOCAB, (int(n),), generator=g).tolist() for n in torch.randint(2, 9, (10,), generator=g)]
    seeds = list(range(10))
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=12)
    rules = [SwitchRule("forward" if i % 2 else "reverse", "js", eps) for i, eps in
             enumerate([0.0, 0.01, 0.05, 0.1, math.inf] * 2)]
    failures = []
    for kind in ("llama", "qwen2"):
        base, rl = tiny(kind, 1), tiny(kind, 2)
        cached = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD)
        slow = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, decoder=ReencodingDecoder)
        if [c.response_ids for c in cached] != [s.response_ids for s in slow]:
            failures.append(f"{kind}: cross-sampling tokens differ from the re-encoding reference")
        if [c.switched_positions for c in cached] != [s.switched_positions for s in slow]:
            failures.append(f"{kind}: switched positions differ from the re-encoding reference")
        never = [SwitchRule("forward", "js", math.inf)] * len(prompts)
        reference = cross_sample(base, rl, prompts, seeds, never, params, EOS, PAD, decoder=ReencodingDecoder)
        if [s.response_ids for s in sample(base, prompts, seeds, params, EOS, PAD)] != [r.response_ids for r in reference]:
            failures.append(f"{kind}: sampling differs from the re-encoding reference")
    return failures


if __name__ == "__main__":
    sys.exit(main())
