"""Where a decoding step's time goes, for `python -m compute.benchmark --only where`: the figures a device
session needs before tuning (issue 12: is the lockstep step bound by the host, by kernel count, or by memory?).

`per_step` runs a decoding loop twice under the profiler, at two lengths that differ only in their number of
steps; the differences are one step's wall time, its device busy time (the sum of its kernels' time; on a CPU its
operators' own time), its kernel (operator) count and its heaviest kernels, with prefill, capture and warm-up
cancelled out. `read_floor` is the time to read weights and KV once at the bandwidth `copy_bandwidth` measures
in the same run. Needs torch only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from compute.sizing import kv_bytes_per_position


@dataclass(frozen=True)
class StepCost:
    wall_ms: float  # one step, wall clock
    busy_ms: float  # one step, summed kernel (CPU: operator self) time
    kernels: float  # kernels launched per step (CPU: aten operators called, views included)
    top: list[tuple[str, float, float]]  # (name, calls per step, ms per step), heaviest first
    unit: str  # "kernels" on CUDA, "ops" on a CPU


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(run: Callable[[int], object], steps: int, device: torch.device) -> tuple[float, dict]:
    _sync(device)
    t = time.perf_counter()
    run(steps)
    _sync(device)
    return time.perf_counter() - t, {}


def _profiled(run: Callable[[int], object], steps: int, device: torch.device) -> tuple[float, dict]:
    """Wall seconds of `run(steps)` and, per kernel name, (calls, microseconds) under the profiler."""
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        wall, _ = _timed(run, steps, device)
    kernels = {}
    for e in prof.key_averages():
        if cuda and e.device_type == DeviceType.CUDA:
            kernels[e.key] = (e.count, e.self_device_time_total)
        elif not cuda and e.key.startswith("aten::") and e.self_cpu_time_total > 0:
            kernels[e.key] = (e.count, e.self_cpu_time_total)
    return wall, kernels


def per_step(run: Callable[[int], object], short: int, long: int, device: torch.device, top: int = 8,
             profiled: bool = True) -> StepCost:
    """`run(n)` decodes n new tokens per row from the same start; the step is (long run - short run) / (long - short).
    Each length runs once unprofiled first, so compilation and lazy allocations stay out of both. Without
    `profiled`, wall time only (a loop that captures a CUDA graph is not captured under the profiler)."""
    for n in (short, long):
        run(n)
    measure = _profiled if profiled else _timed
    (wall_s, k_s), (wall_l, k_l) = (measure(run, n, device) for n in (short, long))
    steps = long - short
    diff = {name: ((calls - k_s.get(name, (0, 0))[0]) / steps, (us - k_s.get(name, (0, 0))[1]) / steps / 1e3)
            for name, (calls, us) in k_l.items()}
    heaviest = sorted(((name, calls, ms) for name, (calls, ms) in diff.items()), key=lambda r: -r[2])[:top]
    return StepCost(wall_ms=(wall_l - wall_s) / steps * 1e3, busy_ms=sum(ms for _, ms in diff.values()),
                    kernels=sum(calls for calls, _ in diff.values()), top=heaviest,
                    unit="kernels" if device.type == "cuda" else "ops")


def copy_bandwidth(device: torch.device, gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes per second that a device-to-device copy moves (read plus write), measured now."""
    n = int(gib * 2 ** 30) // 2
    src = torch.ones(n, dtype=torch.float16, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    _sync(device)
    return 2 * n * src.element_size() * repeats / (time.perf_counter() - t)


def read_floor(models, rows: int, length: int, bandwidth: float) -> float:
    """Milliseconds to read every model's weights and a KV cache of `rows` x `length` positions once."""
    total = sum(sum(p.numel() * p.element_size() for p in m.parameters()) + kv_bytes_per_position(m) * rows * length
                for m in models)
    return total / bandwidth * 1e3


def describe(what: str, cost: StepCost, floor_ms: float) -> str:
    if not cost.top:
        return f"where   {what}: {cost.wall_ms:.2f} ms per step wall; reading weights and KV once: {floor_ms:.2f} ms"
    heaviest = "; ".join(f"{name[:60]} {calls:.0f}x {ms:.3f} ms" for name, calls, ms in cost.top)
    return (f"where   {what}: {cost.wall_ms:.2f} ms per step wall, {cost.busy_ms:.2f} ms busy in "
            f"{cost.kernels:,.0f} {cost.unit} ({cost.busy_ms / max(cost.wall_ms, 1e-9):.0%} of the wall); reading "
            f"weights and KV once: {floor_ms:.2f} ms\n        heaviest per step: {heaviest}")
