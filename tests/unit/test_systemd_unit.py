"""The shipped unit passes `systemd-analyze verify` and scores "OK" (≤ 2.0) in its offline
security analysis."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

UNIT = REPO / "systemd" / "portald.service"
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                reason="systemd-analyze is not installed (Debian package systemd)")


def _unit_copy(tmp_path: Path) -> Path:
    # verify checks that ExecStart's binary exists; the installed one is ours in the venv
    portald = Path(sys.executable).with_name("portald")
    text = UNIT.read_text().replace("ExecStart=/usr/bin/portald", f"ExecStart={portald}")
    copy = tmp_path / "portald.service"
    copy.write_text(text)
    return copy


def test_the_unit_verifies(tmp_path: Path) -> None:
    proc = subprocess.run(["systemd-analyze", "verify", str(_unit_copy(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if "portald.service" in line]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(_unit_copy(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for portald\.service: ([0-9.]+) (\w+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, match.group(0)


def test_the_unit_is_notify_with_watchdog_reload_and_credentials() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes",
                 "StateDirectory=portald"):
        assert line in text
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
    assert re.search(r"^LoadCredential=smtp_password:", text, re.M)
