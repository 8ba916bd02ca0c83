"""Live processes, read from /proc: what a run left behind."""

from __future__ import annotations

from pathlib import Path


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every live process (zombies have ended: left out)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue  # ended while read
        if state != "Z":
            out[int(entry.name)] = (int(parent), command)
    return out


def descendants(pid: int) -> dict[int, str]:
    """Every live process under `pid`, with its command line."""
    live, out, frontier = processes(), {}, {pid}
    while frontier:
        children = {p for p, (parent, _) in live.items() if parent in frontier}
        out.update({p: live[p][1] for p in children})
        frontier = children
    return out
