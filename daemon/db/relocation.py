"""Under root, the embedded PostgreSQL (daemon/db/embedded.py) runs as `nobody`, which must reach
the binaries and the data directory; a checkout in a private folder (root's home, a `mktemp -d`
directory) does not allow that. Whatever `nobody` cannot reach is put where it can, and nothing
of the user's is opened up:

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
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("portald.embedded")

RUN_AS_WHEN_ROOT = "nobody"
# for what RUN_AS_WHEN_ROOT cannot reach where it is
CACHE_DIR = Path("/var/cache/portald-embedded")
CLUSTERS_DIR = Path("/var/lib/portald-embedded")
CACHE_UNUSED_DAYS = 30
ORPHAN_AFTER_S = 24 * 3600
CLUSTER_ID = re.compile(r"[0-9a-f]{16}")


class EmbeddedError(Exception):
    """The embedded PostgreSQL could not be found, created or started (raised here and by
    daemon/db/embedded.py)."""


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


def bindir_for(user: pwd.struct_passwd, bindir: Path) -> Path:
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

def root_only_dir(path: Path) -> Path:
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
    base = root_only_dir(CACHE_DIR)
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


def prune_clusters(base: Path, keep: Path) -> None:
    """Remove the clusters whose state directory no longer links to them (deleted checkouts),
    unless running or started within ORPHAN_AFTER_S."""
    with _flock(base / ".lock", fcntl.LOCK_EX | fcntl.LOCK_NB) as locked:
        if not locked:
            return
        now = time.time()
        for cluster in base.iterdir():
            if cluster == keep or not CLUSTER_ID.fullmatch(cluster.name):
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
