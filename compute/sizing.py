"""How much fits: a model's weights against the device's free memory (before loading anything), how many rows
to decode at once (from the free memory on a GPU, from the model's size on a CPU), and how many torch threads a
process takes when several share the machine's cores.

Knows nothing about tables or the lake.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

GiB = 1 << 30
MAX_ROWS = {"cuda": 512, "cpu": 4096}  # more rows than this buys little: weights are read once per step already
CPU_STEP_BYTES = 2 ** 33  # on a CPU, rows x weight bytes per step: the toy pair gets thousands of rows, a 1.5B one few
DEVICE_LIMIT: int | None = None  # bytes a GPU may use in all (a benchmark caps a big card to a smaller one's size)
VOCAB_TEMPORARIES = 16  # float32 [rows, vocab] tensors alive at once per model in a step (softmax, logs, cdf, ...)


def stored_parameters(folder: str | Path) -> int:
    """Parameters of a Hugging Face folder, read from the headers of the safetensors files `from_pretrained` loads
    (those of model.safetensors.index.json, else model.safetensors, else every one; no weights are read); 0 when
    the folder has none (a .bin-only folder). A release's extra copies (Mistral's consolidated.safetensors) do not
    count."""
    folder, total = Path(folder), 0
    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted({folder / name for name in json.loads(index.read_text())["weight_map"].values()})
    elif (folder / "model.safetensors").exists():
        files = [folder / "model.safetensors"]
    else:
        files = sorted(folder.glob("*.safetensors"))
    for f in files:
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for name, entry in header.items():
            if name != "__metadata__":
                n = 1
                for d in entry["shape"]:
                    n *= d
                total += n
    return total


def free_bytes(device: torch.device) -> int:
    """Memory free on `device`: the GPU's free memory, or the host's available memory."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        return free if DEVICE_LIMIT is None else min(free, DEVICE_LIMIT - torch.cuda.memory_reserved(device))
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62


def check_fits(folder: str | Path, device: torch.device, dtype: torch.dtype, headroom: float = 0.9) -> None:
    """Raise one clear MemoryError, before any weight is read, when the folder's weights in `dtype` would not
    fit in `headroom` of the memory free on `device` (what is already loaded, e.g. the other model, counted)."""
    n = stored_parameters(folder)
    need, free = n * dtype.itemsize, free_bytes(device)
    if need > headroom * free:
        where = torch.cuda.get_device_name(device) if device.type == "cuda" else "this machine's memory"
        raise MemoryError(
            f"the model at {folder} has {n / 1e9:.2f}B parameters: {need / GiB:.1f} GiB in {str(dtype).split('.')[-1]}, "
            f"but {where} has {free / GiB:.1f} GiB free. Use a device with more memory (a study holds the base and "
            "one checkpoint at once, plus their KV caches), or a smaller model.")


def kv_bytes_per_position(model) -> int:
    """Bytes of keys and values that one position of one row takes in `model`'s cache."""
    c = model.config
    heads = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return 2 * c.num_hidden_layers * heads * head_dim * next(model.parameters()).dtype.itemsize


def rows_per_batch(models: list, width: int, new_tokens: int, headroom: float = 0.6) -> int:
    """Rows to decode in lockstep through `models` (prompts `width` wide, up to `new_tokens` new tokens).

    GPU: as many as `headroom` of the free memory holds (every model's KV buffers for `width + new_tokens`
    positions plus the float32 vocabulary work of a step), at most MAX_ROWS["cuda"]. CPU: the step's fixed costs
    dominate small models, so rows grow as the weights shrink (CPU_STEP_BYTES), from 16 to MAX_ROWS["cpu"].
    """
    device = next(models[0].parameters()).device
    if device.type == "cuda":
        rows = memory_rows(models, width, new_tokens, headroom)
    else:
        weights = sum(p.numel() * p.element_size() for m in models for p in m.parameters())
        rows = CPU_STEP_BYTES // max(weights, 1)
    return max(1 if device.type == "cuda" else 16, min(MAX_ROWS[device.type], rows))


def memory_rows(models: list, width: int, new_tokens: int, headroom: float = 0.6) -> int:
    """Rows whose KV buffers in every model (`width + new_tokens` positions) and float32 vocabulary work of a step
    fit in `headroom` of the memory free on the models' device."""
    per_row = sum(kv_bytes_per_position(m) * (width + new_tokens) + VOCAB_TEMPORARIES * 4 * m.config.vocab_size
                  for m in models)
    return int(headroom * free_bytes(next(models[0].parameters()).device) // per_row)


_DEFAULT_THREADS: list[int] = []  # torch's intra-op threads when this process first shared them out


def share_threads(concurrent: int, threads: int = 0) -> int:
    """Torch's intra-op threads for a process that runs beside `concurrent - 1` others of its kind (runs going on
    at once): `threads` where given (> 0); otherwise torch's own default (the cores, or OMP_NUM_THREADS) split
    `concurrent` ways, at least 1. Several processes each on every core slow each other several-fold (two toy
    cross-sampling processes on 2 cores: 18 s each on 2 threads, 3.4 s on 1). `concurrent` <= 1 or unknown (0)
    gives the default back. Sets the share and returns it."""
    if not _DEFAULT_THREADS:
        _DEFAULT_THREADS.append(torch.get_num_threads())
    share = threads if threads > 0 else max(1, _DEFAULT_THREADS[0] // max(1, concurrent))
    torch.set_num_threads(share)
    return share
