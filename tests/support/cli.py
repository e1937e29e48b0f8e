"""`portald admin …` in-process, its outcome captured."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from daemon.cli import main


class Cli:
    """Runs `portald admin …` for one test's database and captures the outcome."""

    def __init__(self, cfg_path: Path, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.cfg_path, self.capsys, self.monkeypatch = cfg_path, capsys, monkeypatch

    def __call__(self, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["admin", *argv, "--config", str(self.cfg_path)])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str, stdin: str | None = None) -> Any:
        code, out, err = self(*argv, "--json", stdin=stdin)
        assert code == 0, err
        return json.loads(out)
