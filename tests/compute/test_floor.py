"""Declared ranges are promises: the lowest transformers that pyproject.toml accepts must decode right.

`make install` builds a venv with torch and exactly that floor release (.shiftlake/venv-floor); the KV-cache
check (kv_cache_check.py) runs there. On transformers 5.0-5.17 shiftlake once passed its cache under a
keyword those releases ignore, and every rollout was sampled without its prefix, with no error.
"""

import re
import subprocess
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FLOOR_VENV = ROOT / ".shiftlake" / "venv-floor"


def declared_floor(package: str) -> str:
    match = re.search(rf'"{package}>=([0-9.]+)', (ROOT / "pyproject.toml").read_text())
    assert match, f"pyproject.toml declares no floor for {package}"
    return match.group(1)


def test_kv_cache_decoding_is_right_on_the_declared_transformers_floor():
    python = FLOOR_VENV / "bin" / "python"
    assert python.exists(), f"no floor venv at {FLOOR_VENV}: run `make install` (it builds it)"
    installed = subprocess.run([str(python), "-c", "import transformers; print(transformers.__version__)"],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert Version(installed) == Version(declared_floor("transformers")), f"the floor venv holds {installed}: rerun `make install`"
    done = subprocess.run([str(python), str(ROOT / "tests" / "compute" / "kv_cache_check.py")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"transformers {installed}" in done.stdout and "equals re-encoding" in done.stdout
