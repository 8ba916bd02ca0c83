"""The device decode loop shared by `sampling.sample` and `cross_sampling.cross_sample`.

A step writes its tokens (and any other per-row outputs) into device buffers; the loop copies them to the host
every few steps and feeds them to `compute.prompts.Ends`, so a step never waits for the host. On one CUDA device
with static decoders (`decoders.StaticDecoder`) the step is captured once as a CUDA graph after `WARM_STEPS` eager
steps and replayed; elsewhere rows that have ended are dropped from the batch once a quarter of them has.
Knows nothing about tables or the lake.
"""

from __future__ import annotations

import torch

from compute.decoders import StaticDecoder, _dynamic_rope
from compute.prompts import Ends


CPU_CHECK_EVERY = 4
KEEP_BELOW = 0.75  # off a GPU, rows that ended leave the batch once the live share falls below this
WARM_STEPS = 2  # eager steps before a CUDA graph is captured (lazy allocations, the decoders' first-step guards)


class Loop:
    """The bookkeeping of a decoding loop whose steps stay on the device.

    A step reads the step number from `at` (a device tensor it increments) and writes its per-row outputs with
    `write(name, values)` into column `at` of a device buffer [rows, steps]. `run` calls the step up to `steps`
    times; every `check_every` steps it copies the new columns to host buffers over all rows, feeds the tokens to
    `Ends` and stops once every row has ended. Where a CUDA graph is allowed, steps after the first `WARM_STEPS`
    replay one captured graph. Elsewhere rows that have ended are dropped from the device state once a quarter of
    them has (`keep` is called with the rows that stay), so later steps compute only live rows.
    """

    def __init__(self, rows: int, steps: int, device, outputs: dict[str, torch.dtype]):
        self.steps, self.at = steps, torch.zeros(1, dtype=torch.long, device=device)
        self.rows = torch.arange(rows)  # the original index of each row still on the device
        self.out = {name: torch.zeros(rows, steps, dtype=dtype, device=device) for name, dtype in outputs.items()}
        self.host = {name: torch.zeros(rows, steps, dtype=dtype) for name, dtype in outputs.items()}

    def write(self, name: str, values: torch.Tensor) -> None:
        self.out[name].index_copy_(1, self.at, values.view(-1, 1).to(self.out[name].dtype))

    def run(self, step, ends: Ends, responses: list[list[int]], decoders: list, graph: bool | None,
            check_every: int | None, keep) -> None:
        """`graph` and `check_every` as `sampling.sample` takes them; `keep` is used where every decoder can drop
        rows."""
        graph = capturable(decoders, self.at.device, graph)
        check_every = check_every or (16 if self.at.device.type == "cuda" else CPU_CHECK_EVERY)
        compiled = any(getattr(d, "compiled", None) is not None for d in decoders)
        keep = keep if all(hasattr(d, "keep") for d in decoders) and not compiled else None  # compiled: one shape
        captured, fed = None, 0
        for i in range(self.steps):
            if graph and i >= WARM_STEPS:
                if captured is None:
                    torch.cuda.synchronize()
                    captured = torch.cuda.CUDAGraph()
                    # compiled steps compiled in the warm steps: a recompile here would break the capture obscurely
                    stance = "fail_on_recompile" if compiled else "default"
                    with torch.compiler.set_stance(stance), torch.cuda.graph(captured):
                        step()
                captured.replay()
            else:
                step()
            if (i + 1) % check_every and i < self.steps - 1:
                continue
            for name, buffer in self.out.items():
                self.host[name][self.rows, fed: i + 1] = buffer[:, fed: i + 1].cpu()
            ends.feed(self.host["tokens"][:, fed: i + 1], responses)
            fed = i + 1
            if bool(ends.done.all()):
                return
            live = ~ends.done[self.rows]
            if keep is not None and not graph and live.sum() <= KEEP_BELOW * len(self.rows):
                stay = live.nonzero().flatten()  # on the host: each part moves it to its own device
                self.rows = self.rows[stay]
                self.out = {name: buffer[stay.to(buffer.device)] for name, buffer in self.out.items()}
                keep(stay)


def capturable(decoders, device: torch.device, graph: bool | None) -> bool:
    """Whether `Loop.run` may capture the loop: asked for (None: wherever it can), on one CUDA device, with static
    decoders only."""
    possible = device.type == "cuda" and all(isinstance(d, StaticDecoder) and d.valid.device == device
                                             and not _dynamic_rope(d.model.config) for d in decoders)
    if graph and not possible:
        raise ValueError("CUDA-graph decoding needs every model on one CUDA device, driven by StaticDecoder, without "
                         "dynamic RoPE scaling")
    return possible if graph is None else graph
