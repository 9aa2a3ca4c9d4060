"""Private Redis and Postgres servers for the chaos suite, so it may wipe and restart them.

`PrivateRedis` is a `redis-server` on a free loopback port with no persistence: FLUSHALL there
touches nobody else's data. `PrivatePostgres` is a throwaway cluster (initdb in a temp dir, run
as the `postgres` user when the tests run as root) that `restart()` really restarts. Either
falls back to the shared server when its binaries are missing (see tests/chaos/conftest.py).
Every process started here is stopped by its own pid or data directory, never by name.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001, S110 - not up yet
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up within {timeout_s}s")


class PrivateRedis:
    """`redis-server` on 127.0.0.1:<free port>, no RDB/AOF, stopped with `stop()`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> PrivateRedis:
        import redis

        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            _wait(client.ping, 15, "private redis-server")
        finally:
            client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class PrivatePostgres:
    """A throwaway Postgres cluster on 127.0.0.1:<free port> with trust auth."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bindir = self.find_bindir()
        self.base = Path(tempfile.mkdtemp(prefix="llmq-chaos-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.user = "postgres" if os.geteuid() == 0 else None  # initdb refuses to run as root
        self.admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def find_bindir() -> Path | None:
        for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (candidate / "initdb").exists():
                return candidate
        found = shutil.which("initdb")
        return Path(found).parent if found else None

    @classmethod
    def available(cls) -> bool:
        if cls.find_bindir() is None:
            return False
        if os.geteuid() != 0:
            return True
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
        return True

    def _run(self, *argv: str, timeout_s: float = 60) -> None:
        assert self.bindir is not None
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        subprocess.run(
            cmd,
            check=True,
            timeout=timeout_s,
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.base,
        )

    def start(self) -> PrivatePostgres:
        if self.user:
            shutil.chown(self.base, self.user, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self._ctl("start")
        return self

    def _ctl(self, action: str, mode: str = "fast") -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.base}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=300"
        )
        argv = ["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60"]
        if action != "stop":
            argv += ["-o", opts]
        self._run(*argv, "-m", mode, action)

    def restart(self) -> None:
        """A real restart: `pg_ctl restart -m fast` (every backend is disconnected)."""
        self._ctl("restart")

    def ensure_running(self) -> None:
        """Start the cluster again if a failed test left it stopped."""
        if self.bindir is None or not self.data.exists():
            return
        probe = subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.base,
            check=False,
        )
        if probe.returncode != 0:
            self._ctl("start")

    def stop(self) -> None:
        try:
            self._ctl("stop", mode="immediate")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.base, ignore_errors=True)
