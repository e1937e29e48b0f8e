"""The private PostgreSQL used when no DSN is configured.

It lives under `<state dir>/pgdata`, listens on loopback only with a generated password, and
is shared by every portald process on that state directory: the first process that needs it
starts it, and only that process stops it. The binaries come from the `pgserver` wheel when it
is installed, else from the system (`pg_config --bindir`, Debian's /usr/lib/postgresql).
PostgreSQL refuses to run as root, so under root the cluster is owned by and run as `nobody`.

Under root, `nobody` must reach the binaries and the data directory, which a checkout in a
private folder (root's home, a `mktemp -d` directory) does not allow. Whatever `nobody` cannot
reach is put where it can, and nothing of the user's is opened up:

- Binaries: the pgserver wheel's tree (`pginstall/{bin,lib,share}` and `pgserver.libs`, the
  shared libraries the wheel's binaries find through `$ORIGIN/../../../pgserver.libs`) is
  copied once to `CACHE_DIR/postgresql-<version>-<hash of the tree>`, root-owned and
  world-readable. A copy is made in a private temporary directory and renamed into place, so
  two processes starting at once both end up with one complete copy; before every use the
  cache, the directories above it and every file in it are checked to be root-owned and
  writable by root only, so no other local user can replace what root and `nobody` run.
  Copies unused for `CACHE_UNUSED_DAYS` days that no process runs from are removed when a new
  copy is made. System binaries (under /usr) need no copy; their share directory lives
  elsewhere, so they could not be moved anyway.
- Data: when `nobody` cannot reach the state directory, the cluster lives in
  `CLUSTERS_DIR/<random id>/data` (owned by `nobody`, 0700, in a root-owned directory) and
  `<state dir>/pgdata` is a symlink to it, so restarts and other processes on the same state
  directory find it again through the state directory and its lock, exactly as before; the
  password and port files stay in the state directory, readable by root only, and
  `<state dir>/postgres.log` links to the server's log. Each such cluster records its state
  directory; one that state directory no longer links to, not running and not started for
  `ORPHAN_AFTER_S`, is removed by the next start. `destroy()` removes a cluster at once.

Rejected: opening up the folders on the way (what pgserver itself does under root: chmod
o+rx of every parent up to /) exposes the user's private files. Running the server in a user
namespace under a mapped non-root uid, or as `nobody` with CAP_DAC_READ_SEARCH or
CAP_DAC_OVERRIDE, needs no copies but hands the server root's access to files (the mapped uid
is root outside; the capabilities bypass permissions), which is what PostgreSQL refuses root
for, and containers often forbid both (seccomp, the capability bounding set). A copy per run or
per cluster, or one in /tmp, costs 25 MB and a second each time, and names in /tmp can be taken
first by any local user.

Non-root users are unaffected: the server runs as them, in place, as before.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("portald.embedded")

START_TIMEOUT_S = 60
RUN_AS_WHEN_ROOT = "nobody"
# Under root only, for what RUN_AS_WHEN_ROOT cannot reach where it is (see above).
CACHE_DIR = Path("/var/cache/portald-embedded")
CLUSTERS_DIR = Path("/var/lib/portald-embedded")
CACHE_UNUSED_DAYS = 30
ORPHAN_AFTER_S = 24 * 3600
_CLUSTER_ID = re.compile(r"[0-9a-f]{16}")


class EmbeddedError(Exception):
    """The embedded PostgreSQL could not be found, created or started."""


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


# -- what the server user can reach (root only) --------------------------------------------------

def _allows(st: os.stat_result, user: pwd.struct_passwd, bits: int) -> bool:
    """Whether `user`, with its primary group only (as the server runs), has `bits` (r=4 w=2
    x=1) on a file with status `st`."""
    shift = 6 if st.st_uid == user.pw_uid else 3 if st.st_gid == user.pw_gid else 0
    return (st.st_mode >> shift) & bits == bits


def can_reach(user: pwd.struct_passwd, path: Path) -> bool:
    """Whether `user` can look up `path`: search permission on every directory down to it."""
    real = Path(os.path.realpath(path))
    dirs = [*real.parents, real] if real.is_dir() else list(real.parents)
    try:
        return all(_allows(os.stat(d), user, 1) for d in dirs)
    except OSError:
        return False


def _relocatable_tree(bindir: Path) -> tuple[Path, list[str]] | None:
    """The pgserver wheel's self-contained tree, as (anchor, parts relative to it); None for
    other binaries (a system package's share directory is elsewhere: they cannot be moved)."""
    prefix = bindir.parent
    if prefix.name != "pginstall" or prefix.parent.name != "pgserver":
        return None
    anchor = prefix.parent.parent
    parts = [f"pgserver/pginstall/{d}" for d in ("bin", "lib", "share")]
    if (anchor / "pgserver.libs").is_dir():
        parts.append("pgserver.libs")
    return anchor, [p for p in parts if (anchor / p).is_dir()]


def _tree_entries(anchor: Path, parts: list[str]) -> Iterator[tuple[str, Path]]:
    """Every directory and file of the tree, sorted, as (path relative to anchor, path)."""
    for part in parts:
        for dirpath, dirnames, filenames in os.walk(anchor / part, followlinks=True):
            dirnames.sort()
            here = Path(dirpath)
            yield str(here.relative_to(anchor)), here
            for name in sorted(filenames):
                yield str((here / name).relative_to(anchor)), here / name


def _binaries_usable_by(user: pwd.struct_passwd, bindir: Path) -> bool:
    tree = _relocatable_tree(bindir)
    if tree is None:
        return can_reach(user, bindir) and all(
            _allows(os.stat(bindir / t), user, 5) for t in ("initdb", "pg_ctl", "postgres"))
    anchor, parts = tree
    if not all(can_reach(user, anchor / p) for p in parts):
        return False
    for rel, path in _tree_entries(anchor, parts):
        executable = path.is_dir() or rel.startswith(parts[0] + "/")
        if not _allows(os.stat(path), user, 5 if executable else 4):
            return False
    return True


def _bindir_for(user: pwd.struct_passwd, bindir: Path) -> Path:
    """`bindir` if `user` can run the binaries there, else their copy in the cache."""
    real = Path(os.path.realpath(bindir))
    if _binaries_usable_by(user, real):
        return bindir
    tree = _relocatable_tree(real)
    if tree is None:
        raise EmbeddedError(f"{user.pw_name}, the user PostgreSQL runs as under root, cannot reach "
                            f"the PostgreSQL binaries in {bindir}; install the pgserver wheel "
                            "or set [database] dsn")
    try:
        return _cached_bindir(real, *tree)
    except OSError as exc:
        raise EmbeddedError(f"cannot copy the PostgreSQL binaries to {CACHE_DIR}: {exc}") from None


# -- root-owned places -----------------------------------------------------------------------------

def _root_only_dir(path: Path) -> Path:
    """`path` (created 0755 if missing) resolved, after checking that only root can change it or
    anything above it (sticky directories such as /tmp are fine above it)."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    real = Path(os.path.realpath(path))
    for d in [*real.parents, real]:
        st = os.lstat(d)
        if st.st_uid != 0 or (st.st_mode & 0o022 and (d == real or not st.st_mode & stat.S_ISVTX)):
            raise EmbeddedError(f"{d} must be owned by root and writable only by root")
    if stat.S_IMODE(os.lstat(real).st_mode) != 0o755:
        os.chmod(real, 0o755)
    return real


def _check_root_only_tree(top: Path) -> None:
    """Refuse a tree that anyone but root could have changed."""
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [".", *dirnames, *filenames]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if st.st_uid != 0 or st.st_mode & 0o022 or stat.S_ISLNK(st.st_mode):
                raise EmbeddedError(f"refusing to run PostgreSQL from {top}: {os.path.normpath(p)} "
                                    "is not a file or directory owned and writable only by root")


@contextlib.contextmanager
def _flock(path: Path, operation: int) -> Iterator[bool]:
    """Hold flock `operation` on `path`; yields False when LOCK_NB was given and it is taken."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, operation)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- the binaries cache (root only) ----------------------------------------------------------------

def _tree_digest(anchor: Path, parts: list[str]) -> str:
    h = hashlib.sha256()
    for rel, path in _tree_entries(anchor, parts):
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            h.update(f"d {rel}\0".encode())
            continue
        h.update(f"f {rel} {bool(st.st_mode & 0o111)} {st.st_size}\0".encode())
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _pg_version(bindir: Path) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([str(bindir / "postgres"), "-V"], capture_output=True, text=True,
                             timeout=30, env={"LC_ALL": "C", "PATH": os.defpath}).stdout
        if m := re.search(r"\d+(?:\.\d+)*", out):
            return m.group(0)
    return "unknown"


def _populate(anchor: Path, parts: list[str], entry: Path) -> bool:
    """Copy the tree to `entry`; False when another process put it there first."""
    tmp = entry.parent / f".new-{entry.name}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir(mode=0o700)
    try:
        for rel, src in _tree_entries(anchor, parts):
            dst = tmp / rel
            if src.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
                continue
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o755 if os.stat(src).st_mode & 0o111 else 0o644)
        for dirpath, _, _ in os.walk(tmp):
            os.chmod(dirpath, 0o755)
        os.sync()  # complete on disk before it appears under its final name
        try:
            tmp.rename(entry)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _runs_from(top: Path) -> bool:
    """Whether any process runs a program from under `top`."""
    prefix = f"{top}/"
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/exe").startswith(prefix):
                    return True
    return False


def _prune_cache(base: Path, keep: Path) -> None:
    with _flock(base / ".lock", fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
        if not locked:
            return  # someone is using the cache right now; the next new copy prunes
        now = time.time()
        for child in base.iterdir():
            age = now - child.lstat().st_mtime
            stale_copy = child.name.startswith(".new-") and age > 3600
            unused = (child.name.startswith("postgresql-") and child != keep
                      and age > CACHE_UNUSED_DAYS * 86400 and not _runs_from(child))
            if stale_copy or unused:
                log.info("removing %s from the PostgreSQL binaries cache", child)
                shutil.rmtree(child, ignore_errors=True)


def _cached_bindir(bindir: Path, anchor: Path, parts: list[str]) -> Path:
    """The bin directory of the tree's copy in CACHE_DIR, made if missing, checked before use."""
    name = f"postgresql-{_pg_version(bindir)}-{_tree_digest(anchor, parts)[:16]}"
    base = _root_only_dir(CACHE_DIR)
    entry = base / name
    with _flock(base / ".lock", fcntl.LOCK_SH):
        created = not entry.exists() and _populate(anchor, parts, entry)
        _check_root_only_tree(entry)
        os.utime(entry)  # last used: what pruning goes by
    if created:
        log.info("copied the PostgreSQL binaries to %s, where %s can run them", entry,
                 RUN_AS_WHEN_ROOT)
        _prune_cache(base, entry)
    return entry / bindir.relative_to(anchor)


# -- clusters outside the state directory (root only) ----------------------------------------------

def _postmaster_alive(datadir: Path) -> bool:
    try:
        pid = int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _prune_clusters(base: Path, keep: Path) -> None:
    """Remove the clusters whose state directory no longer links to them (deleted checkouts),
    unless running or started within ORPHAN_AFTER_S."""
    with _flock(base / ".lock", fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
        if not locked:
            return
        now = time.time()
        for cluster in base.iterdir():
            if cluster == keep or not _CLUSTER_ID.fullmatch(cluster.name):
                continue
            record = cluster / "state-dir"
            try:
                state_dir: str | None = record.read_text().strip()
                age = now - record.stat().st_mtime
            except OSError:
                state_dir, age = None, now - cluster.lstat().st_mtime
            if age < ORPHAN_AFTER_S or _postmaster_alive(cluster / "data"):
                continue
            with contextlib.suppress(OSError):
                if state_dir and os.readlink(Path(state_dir) / "pgdata") == str(cluster / "data"):
                    continue
            log.info("removing the embedded PostgreSQL cluster %s: %s no longer uses it", cluster,
                     state_dir or "its state directory")
            shutil.rmtree(cluster, ignore_errors=True)


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
            self.bindir = _bindir_for(self._user, self.bindir)
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
        if target.name != "data" or target.parent.parent != base or not _CLUSTER_ID.fullmatch(target.parent.name):
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
            base = _root_only_dir(CLUSTERS_DIR)
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
        _prune_clusters(cluster.parent, keep=cluster)

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
