"""`python -m compute.benchmark` on a CPU: every stage runs and prints its figures beside the reference's."""

import re

from compute import benchmark


def test_every_stage_prints_shiftlake_beside_its_reference(capsys, monkeypatch):
    from compute import sizing

    monkeypatch.setitem(sizing.MAX_ROWS, "cpu", 96)  # the chosen batch size: 96 rows, not a CPU's thousands
    benchmark.main(["--model", "tiny", "--prompt", "8", "--new", "4"])
    out = capsys.readouterr().out
    assert "FAILED" not in out, out
    assert re.search(r"rows per batch chosen for lockstep \(prompt 8 \+ 4\): \d+", out), out
    assert re.search(r"paired .* shiftlake [\d,]+ tok/s .* plain HF [\d,]+ tok/s .* ratio [\d.]+x", out), out
    assert len(re.findall(r"cross   B=\d+ .* [\d,]+ tok/s", out)) == 2, out  # B=64 and the chosen batch size
    assert len(re.findall(r"rollout B=\d+ .* shiftlake [\d,]+ tok/s .* HF generate [\d,]+ tok/s", out)) == 2, out
    assert re.search(r"where   copy bandwidth on cpu: [\d,]+ GB/s", out), out
    steps = re.findall(r"where   (lockstep|rollout) B=(\d+), CUDA graph off: (-?[\d.]+) ms per step wall, (-?[\d.]+) ms "
                       r"busy in ([\d,]+) ops .* reading weights and KV once: ([\d.]+) ms\n        heaviest per step: "
                       r"aten::", out)
    assert [s[:2] for s in steps] == [("lockstep", "64"), ("rollout", "64"), ("lockstep", "96"),
                                      ("rollout", "96")], out
    for _, _, wall, busy, ops, floor in steps:  # wall and busy time are differences of two timed runs: noise can win
        assert int(ops.replace(",", "")) > 0 and float(floor) > 0, out
    ops = [int(s[4].replace(",", "")) for s in steps]
    assert ops[0] > ops[1] and ops[2] > ops[3]  # two models and the rule against one model
    assert re.search(r"where   paired 8x\(64\+64\): the two backbones take \d+% of the pass", out), out


def test_the_toy_training_benchmark_times_padded_against_bucketed_steps(capsys):
    from compute.toyworld import bench

    bench.main(["--steps", "1", "--rounds", "1"])
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^(sft padded|sft buckets|grpo sampling|grpo update padded|grpo update buckets)\s+([\d.]+)",
                           out, re.M))
    assert len(rows) == 5 and all(float(v) > 0 for v in rows.values()), out
    shares = dict(re.findall(r"^(sft padded|sft buckets)\s+[\d.]+\s+(\d+)%", out, re.M))
    assert int(shares["sft buckets"]) < int(shares["sft padded"]), out  # the buckets cut the padding
    assert re.search(r"SFT step: buckets [\d.]+x faster; GRPO update: [\d.]+x", out), out


def test_the_compiled_stage_prints_both_loops_compiled_beside_uncompiled(capsys, monkeypatch):
    from compute import decoders, sizing

    monkeypatch.setattr(decoders, "COMPILE_BACKEND", "aot_eager")  # the stage's code, without inductor's minutes
    monkeypatch.setitem(sizing.MAX_ROWS, "cpu", 96)  # the chosen batch size: 96 rows, not a CPU's thousands
    benchmark.main(["--model", "tiny", "--prompt", "8", "--new", "4", "--only", "compiled"])
    out = capsys.readouterr().out
    assert "FAILED" not in out, out
    rows = re.findall(r"^(cross  |rollout) B=(\d+) prompt 8 \+ 4 new, compiled steps: [\d,]+ tok/s .* first call with "
                      r"the compile \d+ s\); uncompiled [\d,]+ tok/s; ratio [\d.]+x$", out, re.M)
    assert [(name.strip(), int(b)) for name, b in rows] == [("cross", 64), ("rollout", 64), ("cross", 96),
                                                           ("rollout", 96)], out
