"""What `make s3-up` and `make pg-up` leave behind: the server's environment, in a KEY=VALUE file (mode 600) and
printed as `export` lines."""

from __future__ import annotations

from pathlib import Path


def announce(env_file: Path, env: dict[str, str], headline: str, repo: Path) -> None:
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)
    print(f"{headline} Environment (also in {env_file}):")
    for k, v in env.items():
        print(f"export {k}={v}")
    print(f"then: make demo | make ui | shiftlake sql ...   (or: set -a; . {env_file.relative_to(repo)}; set +a)")
