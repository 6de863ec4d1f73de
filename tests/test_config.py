"""Settings: defaults, file, environment; a wrong value names the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, load_settings


def test_embedded_defaults() -> None:
    s = load_settings(environ={})
    assert s.resolved_database_url.startswith("sqlite+aiosqlite:///") and s.resolved_database_url.endswith(
        "var/duet.db")
    assert s.public_url == "http://127.0.0.1:8080" and s.keys_dir == Path("var/keys")


def test_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "duet.toml"
    config.write_text('port = 9000\norganisation = "North Music Hub"\ndatabase_url = "postgres://u@db/duet"\n')
    s = load_settings(config, environ={"DUET_PORT": "9100"})
    assert s.port == 9100 and s.organisation == "North Music Hub"
    assert s.resolved_database_url == "postgresql+asyncpg://u@db/duet"
    assert s.public_url == "http://127.0.0.1:9100"


@pytest.mark.parametrize(("environ", "named"), [
    ({"DUET_PORT": "eighty"}, "DUET_PORT"),
    ({"DUET_PORT": "70000"}, "DUET_PORT"),
    ({"DUET_PUBLIC_URL": "duet.example.org"}, "DUET_PUBLIC_URL"),
    ({"DUET_DATABASE_URL": "mysql://x/y"}, "DUET_DATABASE_URL"),
    ({"DUET_TIME_ZONE": "Mars/Olympus"}, "DUET_TIME_ZONE"),
    ({"DUET_ICE_SERVERS": "[{"}, "DUET_ICE_SERVERS"),
    ({"DUET_ICE_SERVERS": '[{"url": "stun:x"}]'}, "DUET_ICE_SERVERS"),
    ({"DUET_STORE": "ftp://x"}, "DUET_STORE"),
    ({"DUET_COLOUR": "blue"}, "DUET_COLOUR"),
    ({"DUET_SESSION_IDLE_MINUTES": "0"}, "DUET_SESSION_IDLE_MINUTES"),
    ({"DUET_EARLY_JOIN_MINUTES": "-5"}, "DUET_EARLY_JOIN_MINUTES"),
    ({"DUET_LATE_GRACE_MINUTES": "-1"}, "DUET_LATE_GRACE_MINUTES"),
    ({"DUET_PASSWORD_WORKERS": "0"}, "DUET_PASSWORD_WORKERS"),
    ({"DUET_TOTP_MAX_FAILURES": "0"}, "DUET_TOTP_MAX_FAILURES"),
    ({"DUET_AUDIT_CHECKPOINT_EVERY": "0"}, "DUET_AUDIT_CHECKPOINT_EVERY"),
])
def test_a_wrong_value_names_the_setting(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert str(caught.value).startswith(f"setting {named}:")


def test_a_bad_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="setting colour: unknown"):
        load_settings(unknown, environ={})
