"""`shiftlake ui -p PORT -h HOST`: dagster dev's own options pass through `shiftlake ui` (they used to fail with
"unrecognized arguments", and `-h` printed shiftlake's help), and the UI it starts serves the code location."""

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from compute.processes import stop_group
from orchestration.app.live import wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return None


def test_port_and_host_pass_through_to_dagster_dev(small_world, tmp_path):
    port = _free_port()
    (tmp_path / "checkpoints").mkdir()  # an empty watched folder: the daemon's sensor launches no analysis
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "LAKE_URL": str(tmp_path / "lake"),
           "BASE_MODEL": str(small_world / "base"), "CHECKPOINTS_URL": str(tmp_path / "checkpoints"),
           "PROBLEMS_URL": str(small_world / "problems.jsonl")}
    log = open(tmp_path / "ui.log", "wb")
    ui = subprocess.Popen([sys.executable, "-m", "orchestration.app.cli", "ui", "-p", str(port), "-h", "127.0.0.1"],
                          env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert ui.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
            return _get(f"{base}/server_info")

        assert "dagster_webserver_version" in wait_for(up, timeout=240, every=1, what="shiftlake ui answering")
        query = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
        answer = wait_for(lambda: _get(f"{base}/graphql", {"query": query}), timeout=60, what="the code location")
        nodes = answer["data"]["repositoriesOrError"]["nodes"]
        assert [n["location"]["name"] for n in nodes] == ["orchestration.definitions"]
    finally:
        stop_group(ui)
        log.close()
