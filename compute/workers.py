"""Run a function over many inputs in worker processes, each call under a hard timeout.

A call that overruns its timeout has its worker killed (SIGKILL) and replaced; its result is `TIMEOUT`
and the other calls go on. A call that raises gives a `WorkerError` carrying the message. Workers are fresh
interpreters (`python -m compute.workers`: never forked, since the parent may hold torch threads, and
independent of the parent's `__main__`, which may be any script) talking pickles over two pipes. Each runs
`prepare` once before its first call, so slow imports do not count against a call's timeout. `fn` and
`prepare` must be importable functions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait

READY_TIMEOUT_S = 120.0


class _Timeout:
    def __repr__(self) -> str:
        return "TIMEOUT"


TIMEOUT = _Timeout()


class WorkerError(Exception):
    """A call raised in its worker, or its worker died; the message says which and why."""


def _serve(conn: Connection) -> None:
    fn, prepare = conn.recv()
    if prepare is not None:
        prepare()
    conn.send("ready")
    while (args := conn.recv()) is not None:
        try:
            conn.send((True, fn(*args)))
        except Exception as exc:  # report, keep serving
            conn.send((False, f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, fn: Callable, prepare: Callable | None):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "compute.workers", str(to_child_r), str(from_child_w)],
            pass_fds=(to_child_r, from_child_w), env=env, stdin=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.conn = _Duplex(Connection(from_child_r, writable=False), Connection(to_child_w, readable=False))
        self.conn.send((fn, prepare))
        self.ready = False
        self.born = time.monotonic()
        self.task: int | None = None
        self.started = 0.0

    def stop(self, kill: bool = False) -> None:
        if kill or not self.ready:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                self.process.kill()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.conn.close()


class _Duplex:
    """A reading and a writing `Connection` as one; `wait()` watches the reading end."""

    def __init__(self, reader: Connection, writer: Connection):
        self.reader, self.writer = reader, writer

    def fileno(self) -> int:
        return self.reader.fileno()

    def recv(self):
        return self.reader.recv()

    def send(self, obj) -> None:
        self.writer.send(obj)

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


def run_with_timeout(fn: Callable, items: Sequence[tuple], timeout_s: float, workers: int = 2,
                     prepare: Callable | None = None) -> list:
    """`[fn(*item) for item in items]`, or `TIMEOUT` / a `WorkerError` in place of calls that overran or failed."""
    if not items:
        return []
    pending = deque(range(len(items)))
    results: list = [None] * len(items)
    pool = [_Worker(fn, prepare) for _ in range(max(1, min(workers, len(items))))]
    try:
        while pending or any(w.task is not None for w in pool):
            for w in pool:
                if w.ready and w.task is None and pending:
                    w.task, w.started = pending.popleft(), time.monotonic()
                    w.conn.send(items[w.task])
            now = time.monotonic()
            deadlines = [w.started + timeout_s for w in pool if w.task is not None]
            deadlines += [w.born + READY_TIMEOUT_S for w in pool if not w.ready]
            for conn in wait([w.conn for w in pool], timeout=max(0.0, min(deadlines) - now)):
                w = next(w for w in pool if w.conn is conn)
                try:
                    message = conn.recv()
                except EOFError:  # the worker died (crash, OOM kill)
                    if w.task is not None:
                        results[w.task] = WorkerError(f"worker died (exit code {w.process.poll()}) on item {w.task}")
                    elif not w.ready:
                        raise WorkerError(f"a worker died while starting (exit code {w.process.poll()})") from None
                    pool[pool.index(w)] = _replace(w, fn, prepare)
                    continue
                if message == "ready":
                    w.ready = True
                    continue
                ok, value = message
                results[w.task] = value if ok else WorkerError(value)
                w.task = None
            now = time.monotonic()
            for i, w in enumerate(pool):
                if w.task is not None and now - w.started >= timeout_s:
                    results[w.task] = TIMEOUT
                    pool[i] = _replace(w, fn, prepare)
                elif not w.ready and now - w.born >= READY_TIMEOUT_S:
                    raise WorkerError(f"a worker did not start within {READY_TIMEOUT_S:.0f} s")
    finally:
        for w in pool:
            w.stop()
    return results


def _replace(worker: _Worker, fn: Callable, prepare: Callable | None) -> _Worker:
    worker.stop(kill=True)
    return _Worker(fn, prepare)


if __name__ == "__main__":
    _serve(_Duplex(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)))
