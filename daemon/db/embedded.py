"""The private PostgreSQL used when no DSN is configured.

It lives under `<state dir>/pgdata`, listens on loopback only with a generated password, and
is shared by every portald process on that state directory: the first process that needs it
starts it, and only that process stops it. The binaries come from the `pgserver` wheel when it
is installed, else from the system (`pg_config --bindir`, Debian's /usr/lib/postgresql).
PostgreSQL refuses to run as root, so under root the cluster is owned by and run as `nobody`.

Under root, what `nobody` cannot reach where it is (a checkout in a private folder) is put where
it can: daemon/db/relocation.py says how, and why so.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon.db.relocation import (
    CLUSTER_ID,
    CLUSTERS_DIR,
    RUN_AS_WHEN_ROOT,
    EmbeddedError,
    bindir_for,
    can_reach,
    prune_clusters,
    root_only_dir,
)

log = logging.getLogger("portald.embedded")

START_TIMEOUT_S = 60
def find_bindir() -> Path:
    """Where initdb/pg_ctl/postgres live: the pgserver wheel first, then the system."""
    candidates: list[Path] = []
    with contextlib.suppress(ImportError), warnings.catch_warnings():
        # importing pgserver asks platformdirs for a runtime dir it never uses; that warns
        warnings.simplefilter("ignore")
        import pgserver  # type: ignore[import-untyped]

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(out.stdout.strip()))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists() and (c / "postgres").exists():
            return c
    raise EmbeddedError(
        "no PostgreSQL server binaries found: install the pgserver wheel (pip install pgserver) "
        "or PostgreSQL's server package, or set [database] dsn"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    return pwd.getpwnam(RUN_AS_WHEN_ROOT) if os.geteuid() == 0 else None


@dataclass
class EmbeddedPostgres:
    """A private cluster in `root` (created on first start)."""

    root: Path
    fast_unsafe: bool = False  # tests: no fsync; never for real data
    bindir: Path | None = None  # default: find_bindir()

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.datadir = self.root / "pgdata"
        self.bindir = Path(self.bindir) if self.bindir is not None else find_bindir()
        self._started_here = False
        self._user = _run_as()
        if self._user is not None:
            self.bindir = bindir_for(self._user, self.bindir)
            self.datadir = self._linked_datadir() or self.datadir

    # -- subprocess plumbing -------------------------------------------------------------------

    def _pg(self, tool: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        try:
            proc = subprocess.run([str(self.bindir / tool), *args], capture_output=True, text=True,
                                  timeout=timeout, env=env, cwd="/", **kwargs)
        except OSError as exc:
            raise EmbeddedError(f"cannot run {tool}: {exc}") from None
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise EmbeddedError(f"{tool} failed: {detail[-1] if detail else f'exit {proc.returncode}'}")
        return proc

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    @property
    def _password_file(self) -> Path:
        return self.root / "pg-password"

    @property
    def _port_file(self) -> Path:
        return self.root / "pg-port"

    @property
    def cluster(self) -> Path | None:
        """The directory in CLUSTERS_DIR holding the cluster, when it is not in the state dir."""
        return self.datadir.parent if self.datadir != self.root / "pgdata" else None

    @property
    def logfile(self) -> Path:
        return (self.cluster or self.root) / "postgres.log"

    def _linked_datadir(self) -> Path | None:
        """The data directory `<root>/pgdata` links to (root only; see the module docstring)."""
        link = self.root / "pgdata"
        if not link.is_symlink():
            return None
        target = Path(os.readlink(link))
        base = Path(os.path.realpath(CLUSTERS_DIR))
        if target.name != "data" or target.parent.parent != base or not CLUSTER_ID.fullmatch(target.parent.name):
            return None  # a link of the user's own: followed as before
        return target

    def _place_cluster(self) -> Path:
        """Where initdb puts the cluster: the state dir when the server user can reach it (made
        searchable), else a cluster directory in CLUSTERS_DIR that `<root>/pgdata` links to."""
        assert self._user is not None
        link = self.root / "pgdata"
        if self.cluster is None and (link.is_symlink() or can_reach(self._user, self.root.parent)):
            # the server user must reach its data directory through the state directory
            os.chmod(self.root, os.stat(self.root).st_mode | 0o711)
            return self.root
        if os.path.lexists(link) and not link.is_symlink():
            raise EmbeddedError(f"{link} is not a PostgreSQL data directory; move it away")
        try:
            base = root_only_dir(CLUSTERS_DIR)
            # a linked cluster whose initdb never finished is reused
            cluster = self.cluster or base / secrets.token_hex(8)
            cluster.mkdir(mode=0o755, exist_ok=True)
            os.chmod(cluster, 0o755)
            (cluster / "state-dir").write_text(f"{self.root}\n")
            if not link.is_symlink():
                os.symlink(cluster / "data", link)
        except OSError as exc:
            raise EmbeddedError(f"cannot make a cluster directory in {CLUSTERS_DIR}: {exc}") from None
        self.datadir = cluster / "data"
        return cluster

    def _touch_cluster(self) -> None:
        """Keep an outside cluster's record current (a moved state dir) and its log linked."""
        cluster = self.cluster
        if cluster is None:
            return
        record = cluster / "state-dir"
        if not record.exists() or record.read_text().strip() != str(self.root):
            record.write_text(f"{self.root}\n")
        os.utime(record)
        log_link = self.root / "postgres.log"
        if not os.path.lexists(log_link):
            os.symlink(self.logfile, log_link)
        prune_clusters(cluster.parent, keep=cluster)

    # -- lifecycle -------------------------------------------------------------------------------

    def _initdb(self) -> None:
        password = secrets.token_urlsafe(24)
        self.root.mkdir(parents=True, exist_ok=True)
        home = self.root if self._user is None else self._place_cluster()
        log.info("creating the embedded PostgreSQL cluster in %s", self.datadir)
        self._password_file.write_text(password)
        self._password_file.chmod(0o600)
        staging = home / ("pgdata.new" if home == self.root else "data.new")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(mode=0o700)
        self._own(staging)
        pwfile = staging / ".pw"
        pwfile.write_text(password)
        self._own(pwfile)
        try:
            self._pg("initdb", "-D", str(staging / "data"), "-U", "portald", "--pwfile", str(pwfile),
                     "--auth=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions")
        finally:
            pwfile.unlink(missing_ok=True)
        (staging / "data").rename(self.datadir)
        staging.rmdir()

    def _conf_args(self, port: int) -> list[str]:
        opts = [f"-p {port}", "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=''",
                "-c max_connections=200", "-c shared_buffers=128MB"]
        if self.fast_unsafe:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        return ["-o", " ".join(opts)]

    def running_port(self) -> int | None:
        """The port of the already running server, or None."""
        if not (self.datadir / "postmaster.pid").exists():
            return None
        if self._pg("pg_ctl", "status", "-D", str(self.datadir), check=False).returncode != 0:
            return None
        try:
            return int(self._port_file.read_text())
        except (OSError, ValueError):
            return None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "pg.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def start(self) -> str:
        """Start the cluster unless it runs already; return a DSN for the `portald` database."""
        with self._lock():
            port = self.running_port()
            if port is None:
                if not (self.datadir / "PG_VERSION").exists():
                    self._initdb()
                port = free_port()
                logfile = self.logfile
                logfile.touch(mode=0o600 if self.cluster else 0o666)
                self._own(logfile)
                self._pg("pg_ctl", "start", "-w", "-t", str(START_TIMEOUT_S), "-D", str(self.datadir),
                         "-l", str(logfile), *self._conf_args(port), timeout=START_TIMEOUT_S + 10)
                self._port_file.write_text(str(port))
                self._started_here = True
                log.info("embedded PostgreSQL started on 127.0.0.1:%d", port)
            self._touch_cluster()
        self._ensure_database(port)
        return self.dsn_for(port, "portald")

    def dsn_for(self, port: int, database: str) -> str:
        password = self._password_file.read_text().strip()
        return f"postgresql://portald:{password}@127.0.0.1:{port}/{database}"

    def _ensure_database(self, port: int) -> None:
        # createdb over TCP with the generated password; "already exists" is fine
        env = {**os.environ, "PGPASSWORD": self._password_file.read_text().strip()}
        proc = subprocess.run([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                               "-U", "portald", "portald"], capture_output=True, text=True, env=env)
        if proc.returncode != 0 and "already exists" not in proc.stderr:
            raise EmbeddedError(f"createdb failed: {proc.stderr.strip()}")

    def stop(self, *, force: bool = False) -> None:
        """Stop the cluster if this process started it (or `force`)."""
        if not (self._started_here or force):
            return
        if (self.datadir / "postmaster.pid").exists():
            self._pg("pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "-w", check=False)
            log.info("embedded PostgreSQL stopped")
        self._started_here = False

    def wait_stopped(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (self.datadir / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def destroy(self) -> None:
        """Stop the server and delete the cluster and everything under `root` (tests, demos)."""
        self.stop(force=True)
        self.wait_stopped()
        if self.cluster is not None:
            shutil.rmtree(self.cluster, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
