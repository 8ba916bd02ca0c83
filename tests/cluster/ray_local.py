"""A real two-node Ray cluster on this machine for the tests: a head and a second node (two `ray start`s), each
declaring one GPU that a CPU worker stands in for, inside a network and PID namespace of its own (`unshare`),
where 127.0.0.1 is the only address (outside one, Ray registers the machine's eth0 address) and whose
processes all die with it (`--kill-child`). The node "node_b" can be killed as a machine would die (SIGKILL)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.procs import descendants, processes

ADDRESS = "127.0.0.1:6379"
# a dead node is noticed in about 3 s instead of 30 s
FAST_HEALTH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
               "RAY_USAGE_STATS_ENABLED": "0"}


def in_namespace(argv: list[str], env: dict, timeout: float, log: Path) -> subprocess.CompletedProcess:
    """Run `argv` as PID 1 of a new network and PID namespace (loopback up): everything it starts dies with it.
    The cluster it starts uses Ray's token authentication with a token of its own, whatever ~/.ray holds."""
    env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    wrapped = ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
               "bash", "-c", 'ip link set lo up && exec "$@"', "netns", *argv]
    with open(log, "w") as out:
        return subprocess.run(wrapped, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)


def _ray(*args: str, env: dict) -> None:
    ray = Path(sys.executable).with_name("ray")
    subprocess.run([str(ray), *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=120)


def start_cluster(temp_dir: Path) -> None:
    """Head (1 CPU, 1 GPU) and node_b (1 CPU, 1 GPU) at ADDRESS."""
    env = {**os.environ, **FAST_HEALTH}
    _ray("start", "--head", "--node-ip-address=127.0.0.1", "--port=6379", "--num-cpus=1", "--num-gpus=1",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}", env=env)
    _ray("start", f"--address={ADDRESS}", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=1",
         '--resources={"node_b": 1}', "--disable-usage-stats", env=env)


def stop_cluster() -> None:
    _ray("stop", "--force", env={**os.environ})


def node_b() -> dict[int, str]:
    """node_b's processes, pid -> command line: its raylet and every process under it (its workers and agents)."""
    raylets = {pid: cmd for pid, (_, cmd) in processes().items() if "raylet/raylet" in cmd and "node_b" in cmd}
    return {**raylets, **{k: v for pid in raylets for k, v in descendants(pid).items()}}


def busy_on_node_b(task: str) -> bool:
    """Is a worker of node_b running `task` (Ray titles a busy worker process "ray::<Class>.<method>")?"""
    return any(cmd.startswith(f"ray::{task}") for cmd in node_b().values())


def kill_node_b_when_busy(task: str, timeout: float = 300.0) -> dict:
    """Wait until node_b runs `task`, then SIGKILL the node; what was seen."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if busy_on_node_b(task):
            time.sleep(0.3)  # into the shard's work
            busy = busy_on_node_b(task)
            pids = node_b()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return {"killed": len(pids), "busy_when_killed": busy, "after_s": round(time.monotonic() - start, 2)}
        time.sleep(0.05)
    return {"killed": 0, "busy_when_killed": False, "after_s": timeout}
