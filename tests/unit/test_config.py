"""config.toml: defaults, overrides from the environment and credentials, and errors that
name their key."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import ConfigError, load_config
from tests.support import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_sample_config_is_valid() -> None:
    cfg = load_config(REPO / "config.toml", environ={})
    assert cfg.database.dsn == ""
    assert cfg.http.port == 8080
    assert cfg.smtp.from_ == "portald <portald@localhost>"
    assert cfg.state.dir == "var"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nport = 25\npassword = "x"\nusername = "u"\n')
    cfg = load_config(path, environ={"PORTALD_SMTP_PORT": "2525", "PORTALD_SMTP_PASSWORD": "s3cret",
                                     "PORTALD_SMTP_TLS": "true"})
    assert cfg.smtp.port == 2525
    assert cfg.smtp.password == "s3cret"
    assert cfg.smtp.tls is True


def test_secrets_come_from_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smtp_password").write_text("from-credential\n")
    (creds / "database_dsn").write_text("postgresql://u:p@db.example/portald\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg = load_config(write(tmp_path, '[smtp]\nusername = "u"\n'), environ={})
    assert cfg.smtp.password == "from-credential"
    assert cfg.database.dsn == "postgresql://u:p@db.example/portald"


def test_the_password_never_shows_in_repr(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[smtp]\nusername = "u"\npassword = "hunter22"\n'), environ={})
    assert "hunter22" not in repr(cfg)


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    path = write(tmp_path, """
[http]
port = 70000
public_url = "ftp://x"
[smtp]
port = "abc"
tls = true
starttls = true
[scheduler]
digest_time = "25:99"
[nonsense]
x = 1
""")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={"PORTALD_MAIL_BATCH_SIZE": "many"})
    text = "\n".join(err.value.problems)
    for key in ("http.port", "http.public_url", "smtp.port", "smtp.tls", "scheduler.digest_time",
                "nonsense", "mail.batch_size (from PORTALD_MAIL_BATCH_SIZE)"):
        assert key in text, key


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[smtp]\nhots = 'x'\n"), environ={})
    assert err.value.problems == ["smtp.hots: unknown key"]


def test_invalid_toml_is_one_clear_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[smtp\n"), environ={})
    assert "not valid TOML" in err.value.problems[0]


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "[http]\nport = 8081\n")
    assert main(["check-config", "--config", str(good)]) == 0
    assert "configuration OK" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\nport = 0\n[smtp]\nfrom = 'nobody'\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert any(line.startswith("portald: config: http.port:") for line in err)
    assert any(line.startswith("portald: config: smtp.from:") for line in err)
    assert "Traceback" not in "\n".join(err)


def test_a_named_config_file_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "no such configuration file" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "65", "-1", "'four'"])
def test_smtp_connections_out_of_range_stops_start_up(tmp_path: Path, value: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, f"[smtp]\nconnections = {value}\n")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "smtp.connections: must be" in err and "Traceback" not in err


def test_smtp_connections_default_and_bounds(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), environ={}).smtp.connections == 4
    for ok in (1, 64):
        cfg = load_config(write(tmp_path, f"[smtp]\nconnections = {ok}\n"), environ={})
        assert cfg.smtp.connections == ok
    cfg = load_config(write(tmp_path, ""), environ={"PORTALD_SMTP_CONNECTIONS": "16"})
    assert cfg.smtp.connections == 16
