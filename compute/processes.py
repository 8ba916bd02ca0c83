"""Child processes the application starts in their own process group (servers, daemons): stopped here,
the whole group at once. Knows nothing about what they run."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_group(process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Stop a child started in its own process group (`start_new_session=True`): SIGTERM the group, then
    SIGKILL what is left after `timeout` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
