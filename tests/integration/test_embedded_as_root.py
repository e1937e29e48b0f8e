"""The embedded PostgreSQL under root from a checkout in a private (0700) folder, such as a
`git clone` into `mktemp -d` or into root's home: the server runs as `nobody`, which cannot
enter that folder, so its binaries must come from the root-owned cache and its data directory
from the root-owned cluster place that the state directory links to."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from daemon.db import relocation
from daemon.db.embedded import EmbeddedError, EmbeddedPostgres, free_port
from tests.support import REPO

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="only under root does the embedded server run as another user (nobody)")

START_TIMEOUT_S = 90


@pytest.fixture
def nobody() -> pwd.struct_passwd:
    return pwd.getpwnam(relocation.RUN_AS_WHEN_ROOT)


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A fresh folder as `mktemp -d` makes it: mode 0700, owned by root."""
    path = Path(tempfile.mkdtemp(prefix="portald-private-"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    yield path
    shutil.rmtree(path, ignore_errors=True)


def private_site(checkout: Path) -> Path:
    """The pgserver wheel copied into `checkout`'s .venv, where `make install` puts it."""
    pgserver = pytest.importorskip("pgserver", reason="the pgserver wheel gives the binaries")
    src = Path(pgserver.__file__).parent
    site = (checkout / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
            / "site-packages")
    site.mkdir(parents=True)
    shutil.copytree(src, site / "pgserver", ignore=shutil.ignore_patterns("__pycache__", "include"))
    if (src.parent / "pgserver.libs").is_dir():
        shutil.copytree(src.parent / "pgserver.libs", site / "pgserver.libs")
    return site


def postmaster_pid(datadir: Path) -> int | None:
    try:
        return int((datadir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_portald_runs_from_a_clone_in_a_private_folder(private_dir: Path, nobody) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    checkout = private_dir / "p"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(checkout)], check=True)
    site = private_site(checkout)
    assert not relocation.can_reach(nobody, site / "pgserver" / "pginstall" / "bin")
    state = checkout / "var"  # config.toml's [state] dir, relative to the working directory
    http_port = free_port()
    # the code under test (this checkout), with the clone's binaries, config and state;
    # -P keeps the clone's own copy of the code off sys.path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)]),
           "PORTALD_HTTP_PORT": str(http_port), "PORTALD_SMTP_PORT": str(free_port()),
           "PORTALD_HTTP_PUBLIC_URL": f"http://127.0.0.1:{http_port}"}
    portald = [sys.executable, "-P", "-m", "daemon", "--config", "config.toml"]
    try:
        migrate = subprocess.run([*portald, "migrate"], cwd=checkout, env=env, capture_output=True,
                                 text=True, timeout=START_TIMEOUT_S)
        assert migrate.returncode == 0, migrate.stderr[-3000:]

        # the data directory: outside the private folder, owned by the server user, linked
        link = state / "pgdata"
        assert link.is_symlink()
        datadir = Path(os.readlink(link))
        cluster = datadir.parent
        assert cluster.parent == Path(os.path.realpath(relocation.CLUSTERS_DIR))
        st = datadir.stat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (nobody.pw_uid, 0o700)
        assert (cluster / "state-dir").read_text().strip() == os.path.realpath(state)
        assert stat.S_IMODE((state / "pg-password").stat().st_mode) == 0o600
        assert postmaster_pid(datadir) is None, "migrate stops the server it started"

        proc = subprocess.Popen([*portald, "run", "--mail-catcher"], cwd=checkout, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                assert proc.poll() is None, proc.stderr.read()[-3000:]
                try:
                    status, body = get(f"http://127.0.0.1:{http_port}/readyz")
                except OSError:
                    status = None
                if status == 200:
                    assert json.loads(body)["database"] == "ok"
                    break
                assert time.monotonic() < deadline, "portald did not become ready"
                time.sleep(0.2)
            pid = postmaster_pid(datadir)
            assert pid is not None and alive(pid)
            # the server runs the cached copy of the clone's binaries, which only root can change
            exe = Path(os.readlink(f"/proc/{pid}/exe"))
            entry = Path(os.path.realpath(relocation.CACHE_DIR)) / exe.relative_to(
                os.path.realpath(relocation.CACHE_DIR)).parts[0]
            relocation._check_root_only_tree(entry)

            # a second process on the same state directory shares the running server
            again = subprocess.run([*portald, "migrate"], cwd=checkout, env=env,
                                   capture_output=True, text=True, timeout=START_TIMEOUT_S)
            assert again.returncode == 0, again.stderr[-3000:]
            assert alive(pid) and get(f"http://127.0.0.1:{http_port}/readyz")[0] == 200
            assert os.readlink(link) == str(datadir)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
        assert code == 0
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid), "SIGTERM leaves no postgres behind"
    finally:
        server = EmbeddedPostgres(state, bindir=site / "pgserver" / "pginstall" / "bin")
        cluster = server.cluster
        server.destroy()
        assert cluster is None or not cluster.exists()


def test_test_server_with_binaries_in_a_private_folder(private_dir: Path) -> None:
    """What `make test` does in such a clone: state in a reachable temporary folder."""
    site = private_site(private_dir / "p")
    root = Path(tempfile.mkdtemp(prefix="portald-test-pg-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root, fast_unsafe=True, bindir=site / "pgserver" / "pginstall" / "bin")
    try:
        assert Path(os.path.realpath(server.bindir)).is_relative_to(
            os.path.realpath(relocation.CACHE_DIR))
        dsn = server.start()

        async def select_one() -> int:
            conn = await asyncpg.connect(dsn)
            try:
                return await conn.fetchval("SELECT 1")
            finally:
                await conn.close()

        assert asyncio.run(select_one()) == 1
        assert server.cluster is None  # nobody reaches the state dir: the cluster stays there
        assert (root / "pgdata" / "PG_VERSION").exists()
    finally:
        server.destroy()
    assert not root.exists()


CACHE_SCRIPT = """
import sys
from pathlib import Path
from daemon.db import relocation
relocation.CACHE_DIR = Path(sys.argv[1])
print(relocation.bindir_for(relocation.pwd.getpwnam(relocation.RUN_AS_WHEN_ROOT), Path(sys.argv[2])))
"""


@pytest.fixture
def cache_root() -> Iterator[Path]:
    """A place for a cache of the test's own that the server user can reach."""
    path = Path(tempfile.mkdtemp(prefix="portald-test-cache-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_binaries_cache_is_made_once_by_concurrent_starts_and_checked_before_use(
        cache_root: Path, private_dir: Path, nobody, monkeypatch) -> None:
    bindir = private_site(private_dir / "p") / "pgserver" / "pginstall" / "bin"
    cache = cache_root / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", CACHE_SCRIPT, str(cache), str(bindir)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    (cached,) = {out.strip() for out, _ in results}  # all three use one copy
    cached_bin = Path(cached)
    assert [c.name for c in cache.iterdir() if c.name != ".lock"] == [cached_bin.parents[2].name]
    version = subprocess.run([str(cached_bin / "postgres"), "-V"], user=nobody.pw_uid,
                             group=nobody.pw_gid, extra_groups=[], cwd="/", capture_output=True,
                             text=True)
    assert version.returncode == 0 and "PostgreSQL" in version.stdout

    monkeypatch.setattr(relocation, "CACHE_DIR", cache)
    assert relocation.bindir_for(nobody, bindir) == cached_bin
    initdb = cached_bin / "initdb"
    initdb.chmod(0o775)
    with pytest.raises(EmbeddedError, match="refusing to run PostgreSQL"):
        relocation.bindir_for(nobody, bindir)
    initdb.chmod(0o755)
    os.chown(initdb, nobody.pw_uid, 0)
    with pytest.raises(EmbeddedError, match="refusing to run PostgreSQL"):
        relocation.bindir_for(nobody, bindir)
    os.chown(initdb, 0, 0)
    cache.chmod(0o777)
    with pytest.raises(EmbeddedError, match="must be owned by root and writable only by root"):
        relocation.bindir_for(nobody, bindir)


def test_unused_clusters_and_cache_copies_are_removed(tmp_path: Path) -> None:
    old = time.time() - relocation.ORPHAN_AFTER_S - 60
    clusters = tmp_path / "clusters"
    clusters.mkdir()

    def cluster(name: str, state_dir: Path, *, mtime: float) -> Path:
        c = clusters / name
        (c / "data").mkdir(parents=True)
        (c / "state-dir").write_text(f"{state_dir}\n")
        os.utime(c / "state-dir", (mtime, mtime))
        return c

    deleted = cluster("0" * 16, tmp_path / "deleted-checkout", mtime=old)
    fresh = cluster("1" * 16, tmp_path / "deleted-checkout", mtime=time.time())
    used = cluster("2" * 16, tmp_path / "checkout", mtime=old)
    (tmp_path / "checkout").mkdir()
    os.symlink(used / "data", tmp_path / "checkout" / "pgdata")
    running = cluster("3" * 16, tmp_path / "deleted-checkout", mtime=old)
    (running / "data" / "postmaster.pid").write_text(f"{os.getpid()}\n")
    mine = cluster("4" * 16, tmp_path / "deleted-checkout", mtime=old)
    relocation.prune_clusters(clusters, keep=mine)
    assert sorted(c.name for c in clusters.iterdir() if c.name != ".lock") == [
        fresh.name, used.name, running.name, mine.name]
    assert not deleted.exists()

    cache = tmp_path / "cache"
    cache.mkdir()
    stale = time.time() - relocation.CACHE_UNUSED_DAYS * 86400 - 60
    for name, mtime in [("postgresql-15.0-old", stale), ("postgresql-16.0-recent", time.time()),
                        (".new-postgresql-16.1-x-1-ab", time.time() - 7200),
                        ("postgresql-16.1-new", stale)]:
        (cache / name).mkdir()
        os.utime(cache / name, (mtime, mtime))
    relocation._prune_cache(cache, keep=cache / "postgresql-16.1-new")
    assert sorted(c.name for c in cache.iterdir() if c.name != ".lock") == [
        "postgresql-16.0-recent", "postgresql-16.1-new"]
