"""A throwaway PostgreSQL server for the tests and benchmarks: initdb, pg_ctl, a few queries.

:meth:`PgServer.start` finds the server binaries (:func:`find_bindir`), makes a cluster
in a fresh temporary directory and starts it listening on a unix socket in that
directory and on 127.0.0.1 at a free port, never on another address. Durability is
switched off for speed (``fsync``, ``synchronous_commit``, ``full_page_writes``): the
cluster is deleted by :meth:`PgServer.stop` anyway.

initdb and postgres refuse to run as root. When this process is root, every server
command runs as the ``postgres`` system user (``runuser -u postgres --``, or ``setpriv``
where there is no runuser), created if it does not exist, and the temporary directory
is handed to that user.

Connections are told apart by ``application_name``: each test names its own, so
:meth:`PgServer.count_connections` and :meth:`PgServer.terminate` see only that test's
backends. Administrative queries go over the unix socket with
``application_name=ADMIN_APPLICATION``.

Nothing here imports pytest: ``python -m benchmarks.postgres`` starts its server with
this module too.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

__all__ = [
    "ADMIN_APPLICATION",
    "DATABASE",
    "SUPERUSER",
    "PgServer",
    "PgUnavailable",
    "find_bindir",
]

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
SYSTEM_USER = "postgres"  # who runs the server when this process is root
SUPERUSER = "postgres"  # the cluster's superuser, the role every connection uses
DATABASE = "postgres"
ADMIN_APPLICATION = "tasker-admin"
COMMAND_TIMEOUT = 60.0  # seconds for one initdb or pg_ctl call
CONNECT_TIMEOUT = 10.0
# trust: nothing but this machine can reach it; C locale: whatever LANG says may not exist
INITDB_OPTIONS = ("--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%a '",
}


class PgUnavailable(RuntimeError):
    """No PostgreSQL server can be started here; the message says why."""


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in SERVER_PROGRAMS)


def _major_version(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))


def find_bindir() -> Path | None:
    """Find a directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None.

    Looks, in this order, at ``$TASKER_PG_BINDIR``, ``pg_config --bindir``, Debian's
    ``/usr/lib/postgresql/<version>/bin`` (newest first) and the directory of an
    ``initdb`` on ``PATH``. Debian's ``pg_config`` may come from libpq-dev alone, so
    every candidate must hold all three programs.
    """
    candidates: list[Path] = []
    if configured := os.environ.get("TASKER_PG_BINDIR"):
        candidates.append(Path(configured))
    if pg_config := shutil.which("pg_config"):
        with suppress(OSError, subprocess.SubprocessError):
            answer = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(Path(answer.stdout.strip()))
    candidates.extend(
        sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major_version, reverse=True)
    )
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    return next((bindir for bindir in candidates if _has_server(bindir)), None)


def _as_server_user() -> tuple[tuple[str, ...], pwd.struct_passwd | None]:
    """The command prefix that runs a program as the server's user, and that user.

    Empty and None unless this process is root.
    """
    if os.geteuid() != 0:
        return (), None
    try:
        user = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise PgUnavailable(
                f"running as root and there is no {SYSTEM_USER!r} user to run the server"
            ) from None
        created = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", SYSTEM_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0:
            raise PgUnavailable(
                f"cannot create the {SYSTEM_USER!r} user: {created.stderr.strip()}"
            ) from None
        user = pwd.getpwnam(SYSTEM_USER)
    if runuser := shutil.which("runuser"):
        return (runuser, "-u", SYSTEM_USER, "--"), user
    if setpriv := shutil.which("setpriv"):
        ids = (f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups")
        return (setpriv, *ids, "--"), user
    raise PgUnavailable("running as root and neither runuser nor setpriv is available")


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (start() retries on a clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PgServer:
    """A running throwaway cluster; build it with :meth:`start`, end it with :meth:`stop`.

    Attributes:
        bindir: where initdb, pg_ctl and postgres were found.
        base: the temporary directory holding the cluster, its socket and its log.
        port: the TCP port on 127.0.0.1 (the unix socket uses the same number).
        prefix: the command prefix that runs a server program as the server's user.
    """

    bindir: Path
    base: Path
    port: int = 0
    prefix: tuple[str, ...] = ()
    running: bool = field(default=False, init=False)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "socket"

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    @property
    def dsn(self) -> str:
        """A libpq/asyncpg DSN for TCP on 127.0.0.1."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    @classmethod
    def start(cls, bindir: Path | None = None) -> PgServer:
        """Make a cluster in a new temporary directory and start it.

        Raises:
            PgUnavailable: no server binaries, or initdb or pg_ctl failed; the message
                carries their output (and the server log's tail).
        """
        bindir = bindir or find_bindir()
        if bindir is None:
            raise PgUnavailable(
                "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found: looked at "
                "$TASKER_PG_BINDIR, pg_config --bindir, /usr/lib/postgresql/*/bin and PATH; "
                "install Debian's postgresql package"
            )
        prefix, user = _as_server_user()
        server = cls(bindir, Path(tempfile.mkdtemp(prefix="tasker-pg-")), prefix=prefix)
        try:
            server.socket_dir.mkdir()
            if user is not None:
                for path in (server.base, server.socket_dir):
                    os.chown(path, user.pw_uid, user.pw_gid)
                if server._run(["test", "-w", str(server.base)], check=False).returncode:
                    raise PgUnavailable(
                        f"user {SYSTEM_USER!r} cannot reach {server.base}: point TMPDIR at a "
                        "directory every user can traverse"
                    )
            server._initdb()
            server._launch(user)
        except BaseException:
            server.stop()
            raise
        atexit.register(server.stop)  # in case the caller never gets to stop it
        return server

    def _run(
        self, command: Sequence[str], *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [*self.prefix, *command],
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if check and completed.returncode != 0:
            raise PgUnavailable(
                f"{' '.join(command)} exited with {completed.returncode}:\n"
                f"{completed.stdout}{completed.stderr}{self.log_tail()}"
            )
        return completed

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "30"]
        return self._run([*command, *args], check=check)

    def _initdb(self) -> None:
        initdb = str(self.bindir / "initdb")
        self._run([initdb, "-D", str(self.data_dir), "-U", SUPERUSER, *INITDB_OPTIONS])
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude = 'tasker.conf'  # the test server's settings\n")

    def _launch(self, user: pwd.struct_passwd | None) -> None:
        """Start on a free port; retry with another if someone took it meanwhile."""
        for attempt in range(3):
            self.port = _free_port()
            settings = {**SETTINGS, "port": str(self.port)}
            settings["unix_socket_directories"] = f"'{self.socket_dir}'"
            conf = self.data_dir / "tasker.conf"
            conf.write_text("".join(f"{name} = {value}\n" for name, value in settings.items()))
            if user is not None:
                os.chown(conf, user.pw_uid, user.pw_gid)
            started = self._pg_ctl("-l", str(self.log_file), "start", check=False)
            if started.returncode == 0:
                self.running = True
                return
            if attempt == 2 or "already in use" not in self.log_tail():
                raise PgUnavailable(
                    f"pg_ctl start exited with {started.returncode}:\n"
                    f"{started.stdout}{started.stderr}{self.log_tail()}"
                )

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m <mode>``: returns once the server accepts connections again.

        ``fast`` disconnects every client (their backends are terminated) and rolls
        back open transactions, as an operator's restart does.
        """
        self._pg_ctl("-l", str(self.log_file), "-m", mode, "restart")

    def stop(self) -> None:
        """Shut the server down (immediately if a fast shutdown fails) and delete it all.

        Idempotent; errors are ignored, since it also runs at exit.
        """
        if self.running:
            self.running = False
            with suppress(OSError, subprocess.SubprocessError, PgUnavailable):
                if self._pg_ctl("-m", "fast", "stop", check=False).returncode != 0:
                    self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log, for error messages."""
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- server log ---\n" + "\n".join(tail)

    def connect_kwargs(self, application_name: str, *, unix_socket: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect``/``create_pool`` naming the connection."""
        return {
            "host": str(self.socket_dir) if unix_socket else "127.0.0.1",
            "port": self.port,
            "user": SUPERUSER,
            "database": DATABASE,
            "timeout": CONNECT_TIMEOUT,
            "server_settings": {"application_name": application_name},
        }

    async def connect(self, application_name: str, *, unix_socket: bool = False) -> Any:
        """Open one asyncpg connection (over TCP unless ``unix_socket``)."""
        return await asyncpg.connect(
            **self.connect_kwargs(application_name, unix_socket=unix_socket)
        )

    @asynccontextmanager
    async def admin(self) -> AsyncIterator[Any]:
        """An administrative connection over the unix socket, closed on the way out."""
        conn = await self.connect(ADMIN_APPLICATION, unix_socket=True)
        try:
            yield conn
        finally:
            await conn.close()

    async def count_connections(self, application_name: str, *, admin: Any = None) -> int:
        """Backends in ``pg_stat_activity`` whose ``application_name`` is the given one.

        Args:
            application_name: whose backends to count.
            admin: an open :meth:`admin` connection to use (a new one otherwise).
        """
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        if admin is not None:
            return int(await admin.fetchval(query, application_name))
        async with self.admin() as conn:
            return int(await conn.fetchval(query, application_name))

    async def terminate(self, application_name: str, *, states: Sequence[str] = ("idle",)) -> int:
        """``pg_terminate_backend`` every backend of ``application_name`` in ``states``.

        Waits (up to 5 s each) until the backends have exited, so they are gone from the
        server when this returns; their clients may not have noticed yet.

        Returns:
            How many backends were terminated.
        """
        async with self.admin() as conn:
            killed = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))"
                " FROM pg_stat_activity WHERE application_name = $1 AND state = ANY($2)",
                application_name,
                list(states),
            )
        return int(killed)

    async def wait_for_connections(
        self,
        application_name: str,
        condition: Callable[[int], bool],
        *,
        what: str,
        seconds: float = 10.0,
    ) -> int:
        """Poll the connection count until ``condition(count)`` holds; return the count.

        Backends leave ``pg_stat_activity`` a moment after their client lets go, so
        counts are awaited, not read once.

        Raises:
            TimeoutError: ``condition`` still false after ``seconds``; the
                message names ``what`` and the last count.
        """
        deadline = time.monotonic() + seconds
        async with self.admin() as admin:
            while True:
                count = await self.count_connections(application_name, admin=admin)
                if condition(count):
                    return count
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"waited {seconds} s for {what}; {application_name!r} has {count}"
                    )
                await asyncio.sleep(0.01)
