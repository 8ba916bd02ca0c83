"""A local PostgreSQL for the Dagster instance (`dagster-postgres`): Debian's postgresql binaries on 127.0.0.1.

    python -m infra.pglocal up      # start it (data in .shiftlake/postgres/), print the environment
    python -m infra.pglocal down    # stop it

The cluster is made once by `initdb` with a generated password (in the state folder, mode 600) for the role
`shiftlake`, and holds the database `dagster`. `up` writes DAGSTER_PG_URL to infra/pg.env; with it set, the
application's Dagster instance (`orchestration.app.demo.ensure_dagster_home`) stores runs, events and schedules in
PostgreSQL and runs several at once (infra/dagster-postgres.yaml) instead of SQLite's one. PostgreSQL refuses to
run as root: as root, the server runs as the `postgres` user, which then owns the state folder. Tests start their
own on free ports through `start`/`stop`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.envfile import announce, command

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".shiftlake" / "postgres"
ENV_FILE = REPO / "infra" / "pg.env"
PORT = 5433  # next to a system PostgreSQL's 5432
ROLE, DATABASE = "shiftlake", "dagster"


@dataclass
class Server:
    # the driver named: SQLAlchemy 2.1 takes a bare postgresql:// for psycopg 3, dagster-postgres installs psycopg2
    url: str  # postgresql+psycopg2://shiftlake:...@127.0.0.1:PORT/dagster
    state: Path

    @property
    def env(self) -> dict[str, str]:
        return {"DAGSTER_PG_URL": self.url}


def binaries() -> Path:
    """The newest installed PostgreSQL's bin folder (pg_ctl, initdb, createdb), or one clear error."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    if which := shutil.which("pg_ctl"):
        return Path(which).parent
    raise FileNotFoundError("PostgreSQL is not installed: `apt-get install postgresql` (Debian), or point "
                            "DAGSTER_PG_URL at a PostgreSQL server of your own")


def _as_owner(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool as the server's user (ourselves, or `postgres` when we are root); a failure is one
    message with the tool's own words."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode:
        tool = Path(next(c for c in cmd if "/bin/" in c)).name
        said = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise RuntimeError(f"PostgreSQL's {tool} failed: {said}")
    return done


def _running_port(data: Path) -> int | None:
    """The port of the server running on `data` (`pg_ctl status`; a stale postmaster.pid is not one), or None."""
    if not (data / "PG_VERSION").exists() or _as_owner([str(binaries() / "pg_ctl"), "-D", str(data), "status"],
                                                        check=False).returncode:
        return None
    return int((data / "postmaster.pid").read_text().splitlines()[3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(state: Path = STATE, port: int = PORT) -> Server:
    """Make the cluster if absent (role, password, database), start the server on 127.0.0.1:`port`, wait for it."""
    bin_dir, data = binaries(), state / "data"
    state.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(state, "postgres", "postgres")
        if subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(state)]).returncode:
            raise PermissionError(f"PostgreSQL runs as the user postgres here (we are root), and it cannot reach "
                                  f"{state}: let other users traverse its parent folders (chmod o+x), or run this "
                                  "as a user other than root")
    password_file = state / "password"
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)
        password = secrets.token_urlsafe(24)
        password_file.write_text(password)
        password_file.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(password_file, "postgres", "postgres")
        _as_owner([str(bin_dir / "initdb"), "-D", str(data), "-U", ROLE, "--auth=scram-sha-256",
                   f"--pwfile={password_file}", "--encoding=UTF8", "--no-instructions"])
    password = password_file.read_text().strip()
    (state / "sockets").mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(state / "sockets", "postgres", "postgres")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {state / 'sockets'}"
    try:
        _as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(state / "postgres.log"), "-o", options, "-w",
                   "-t", "60", "start"])
    except RuntimeError as exc:
        raise RuntimeError(f"{exc} (the server's log: {state / 'postgres.log'}; another server on port {port}? "
                           "SHIFTLAKE_PG_PORT picks another)") from None
    env = {**os.environ, "PGPASSWORD": password}
    listed = subprocess.run([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", ROLE, "-d", "postgres",
                             "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
                            env=env, check=True, capture_output=True, text=True)
    if not listed.stdout.strip():
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", ROLE, DATABASE],
                       env=env, check=True, capture_output=True, text=True)
    return _server(state, port)


def _server(state: Path, port: int) -> Server:
    """The running server of `state` (its sessions left alone)."""
    password = (state / "password").read_text().strip()
    return Server(f"postgresql+psycopg2://{ROLE}:{password}@127.0.0.1:{port}/{DATABASE}", state)


def stop(state: Path = STATE) -> bool:
    """Stop the server of `state` (fast shutdown: open sessions are ended); False if none was running."""
    data = state / "data"
    if _running_port(data) is None:
        return False
    try:
        _as_owner([str(binaries() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
    except RuntimeError:
        if _running_port(data) is None:  # it went while we asked (a server killed, its last processes ending)
            return False
        raise
    return True


def _up() -> None:
    """Start the server, or leave the running one alone (moved when it runs on another port)."""
    port, running = int(os.environ.get("SHIFTLAKE_PG_PORT", PORT)), _running_port(STATE / "data")
    if running not in (None, port):
        stop()
    server = _server(STATE, port) if running == port else start(port=port)
    announce(ENV_FILE, server.env, f"PostgreSQL on 127.0.0.1:{port}, database {DATABASE}, data in {STATE / 'data'} "
             f"(log {STATE / 'postgres.log'}).", REPO)


def main(argv: list[str]) -> int:
    return command(argv, __doc__, _up,
                   lambda: "stopped PostgreSQL" if stop() else "no PostgreSQL started by `make pg-up` is running")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
