"""A private PostgreSQL server for tests that stop, kill and restart it: its own data
directory under /tmp, its own port on 127.0.0.1, trust authentication, removed at the
end. The machine's shared PostgreSQL (5432) is never touched.

Debian's server binaries refuse to run as root, so as root they run as the `postgres`
user (runuser); as any other user they run as that user.

    with PostgresInstance() as pg:
        upgrade(pg.url())
        pg.restart()            # fast shutdown: sessions are told, then cut
        pg.stop("immediate")    # a crash: no shutdown checkpoint, recovery on start
        pg.start()
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.e2e.servers import free_port

POSTGRES_USER = "postgres"


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder (PG_BIN overrides), or None."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


class PostgresInstance:
    """One throw-away PostgreSQL server: start, stop, restart, and its URL."""

    def __init__(self, port: int | None = None) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql (set PG_BIN)")
        self.bin = binaries
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pg-private-", dir="/tmp"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if os.geteuid() == 0:
            account = pwd.getpwnam(POSTGRES_USER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._run(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", POSTGRES_USER, "-E", "UTF8", "--locale=C", "--no-sync"
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{POSTGRES_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start and wait until it accepts connections (after crash recovery, if any)."""
        self._pg_ctl("start", "-l", str(self.log), "-o", self._options())

    def stop(self, mode: str = "fast") -> None:
        """smart / fast (sessions cut, clean shutdown) / immediate (as a crash)."""
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("restart", "-m", mode, "-l", str(self.log), "-o", self._options())

    def running(self) -> bool:
        status = subprocess.run(
            self._as_owner(self.bin / "pg_ctl", "status", "-D", str(self.data)),
            cwd=self.root,
            capture_output=True,
            check=False,
        )
        return status.returncode == 0

    def close(self) -> None:
        """Stop the server if it runs (as a crash: nothing to keep) and remove its files."""
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresInstance:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", *args)

    def _run(self, program: str, *args: str) -> None:
        # run from the instance's own folder: the postgres user may not enter the caller's
        done = subprocess.run(
            self._as_owner(self.bin / program, *args), cwd=self.root, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{done.stdout}{done.stderr}{log}")

    def _as_owner(self, program: Path, *args: str) -> list[str]:
        command = [str(program), *args]
        return ["runuser", "-u", POSTGRES_USER, "--", *command] if os.geteuid() == 0 else command
