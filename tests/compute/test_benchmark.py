"""`python -m compute.benchmark` on a CPU: every stage runs and prints its figures beside the reference's."""

import re

from compute import benchmark


def test_every_stage_prints_shiftlake_beside_its_reference(capsys):
    benchmark.main(["--model", "tiny", "--prompt", "8", "--new", "4"])
    out = capsys.readouterr().out
    assert "FAILED" not in out, out
    assert re.search(r"rows per batch chosen for lockstep \(prompt 8 \+ 4\): \d+", out), out
    assert re.search(r"paired .* shiftlake [\d,]+ tok/s .* plain HF [\d,]+ tok/s .* ratio [\d.]+x", out), out
    assert len(re.findall(r"cross   B=\d+ .* [\d,]+ tok/s", out)) == 2, out  # B=64 and the chosen batch size
    assert len(re.findall(r"rollout B=\d+ .* shiftlake [\d,]+ tok/s .* HF generate [\d,]+ tok/s", out)) == 2, out
