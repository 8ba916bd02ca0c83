"""The command line of the local servers (`python -m infra.s3local up|down`, `infra.pglocal`), and what `up` leaves
behind: the server's environment, in a KEY=VALUE file (mode 600) and printed as `export` lines."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def command(argv: list[str], usage: str, up: Callable[[], None], down: Callable[[], str]) -> int:
    """Run `up`, or `down` and print what it says; anything else prints `usage` (exit 2)."""
    if argv[:1] == ["up"]:
        up()
        return 0
    if argv[:1] == ["down"]:
        print(down())
        return 0
    print(usage, file=sys.stderr)
    return 2


def announce(env_file: Path, env: dict[str, str], headline: str, repo: Path) -> None:
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)
    print(f"{headline} Environment (also in {env_file}):")
    for k, v in env.items():
        print(f"export {k}={v}")
    print(f"then: make demo | make ui | shiftlake sql ...   (or: set -a; . {env_file.relative_to(repo)}; set +a)")
