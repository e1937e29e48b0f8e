"""[http] workers and `portald run --workers`: a number of processes or "auto"; anything else
stops start-up with a message naming the key (or the option)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import ConfigError, load_config


def write(tmp_path: Path, value: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"[http]\nworkers = {value}\n")
    return path


def test_one_worker_by_default(tmp_path: Path) -> None:
    assert load_config(tmp_path / "absent.toml", environ={}).http.workers == 1


def test_auto_is_one_per_cpu_this_process_may_use(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '"auto"'), environ={})
    assert cfg.http.workers == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("value", "environ", "expected"), [
    ("3", {}, 3),
    ('"2"', {}, 2),
    ("1", {"PORTALD_HTTP_WORKERS": "4"}, 4),
    ("1", {"PORTALD_HTTP_WORKERS": "AUTO"}, len(os.sched_getaffinity(0))),
])
def test_a_number_from_the_file_or_the_environment(tmp_path: Path, value: str,
                                                   environ: dict[str, str], expected: int) -> None:
    assert load_config(write(tmp_path, value), environ=environ).http.workers == expected


@pytest.mark.parametrize(("value", "words"), [
    ("0", "must be 1..256"), ("-2", "must be 1..256"), ("257", "must be 1..256"),
    ('"many"', "must be a whole number or \"auto\""), ("2.5", "must be a whole number"),
    ("true", "must be a whole number"), ('""', "must be a whole number"),
])
def test_a_bad_value_is_refused_naming_the_key(tmp_path: Path, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, value), environ={})
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("http.workers: ")
    assert words in caught.value.problems[0]


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "2"), environ={"PORTALD_HTTP_WORKERS": "0"})
    assert caught.value.problems == [
        'http.workers (from PORTALD_HTTP_WORKERS): must be 1..256 or "auto" (got 0)']


def test_run_stops_before_serving_on_a_bad_value(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(write(tmp_path, "0"))]) == 2
    assert "http.workers: must be 1..256" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_the_option_is_read_alike(tmp_path: Path, value: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["run", "--config", str(write(tmp_path, "1")), "--workers", value])
    assert caught.value.code == 2
    assert "argument --workers: must be" in capsys.readouterr().err
