"""Typed settings, built once at start-up.

Order: embedded defaults -> optional TOML file (``--config``) -> ``DUET_*`` environment variables.
Unknown keys are rejected and every wrong value raises ``ConfigError`` naming the setting, which the
CLI prints as one line before exiting.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConfigError(Exception):
    """A setting has a value Duet cannot use; the message names it."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"setting {name}: {reason}")
        self.name = name
        self.reason = reason


@dataclass(frozen=True)
class Settings:
    """Every setting Duet reads. ``DUET_<NAME>`` in the environment overrides the file."""

    home: Path = Path("var")
    database_url: str = ""  # empty: SQLite at <home>/duet.db
    public_url: str = ""  # empty: http://<host>:<port>
    host: str = "127.0.0.1"
    port: int = 8080
    time_zone: str = "Europe/London"
    organisation: str = "Duet Music Service"
    # Accounts and links
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    login_max_failures: int = 5  # per account and address: a stranger cannot lock the real user out
    login_account_max_failures: int = 50  # per account from anywhere: a spread-out guesser stops too
    login_address_max_failures: int = 20  # per address (any email, known or not), in front of sign-in
    login_lockout_minutes: int = 15
    totp_max_failures: int = 5  # wrong codes before a half-finished sign-in is ended
    totp_account_max_failures: int = 10  # wrong codes per account before the second factor pauses
    totp_lockout_minutes: int = 60
    password_workers: int = 2  # argon2 checks run at once, off the event loop; more sign-ins wait
    early_join_minutes: int = 10
    late_grace_minutes: int = 15
    link_valid_days: int = 60
    # Mail
    mail_url: str = ""  # empty: .eml files in <home>/outbox
    mail_from: str = "Duet <no-reply@duet.example.org>"
    contact_email: str = ""  # whom families contact about a revoked link or a suspension
    # Recording
    store: str = ""  # empty: folder <home>/recordings; s3://bucket for S3
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    kms_key_id: str = ""  # set: wrap data keys with AWS KMS instead of the X25519 key files
    spool_min_free_mb: int = 512
    # Live media
    ice_servers: str = "[]"  # JSON list of RTCIceServer dicts
    media_workers: int = field(default_factory=lambda: os.cpu_count() or 1)  # 0: media in the web process
    # Visits
    evening_hour: int = 18
    overdue_grace_minutes: int = 15
    overdue_escalate_minutes: int = 30
    storage_policies: Path = Path("storage_policies")
    # Audit (issue 14): signed checkpoints of the chain's head, kept outside the database
    audit_anchors: Path = Path("")  # empty: <home>/audit
    audit_checkpoint_every: int = 100  # events between checkpoints (the daily job writes one too)
    log_level: str = "INFO"
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    # ---- derived values -------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL, defaulting to SQLite under ``home``."""
        if not self.database_url:
            return f"sqlite+aiosqlite:///{(self.home / 'duet.db').resolve()}"
        return normalise_database_url(self.database_url)

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def audit_anchor_dir(self) -> Path:
        """Where checkpoint files go: ideally a folder the database's administrators cannot write."""
        return self.audit_anchors if str(self.audit_anchors) not in ("", ".") else self.home / "audit"

    @property
    def is_https(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def ice_server_list(self) -> list[dict[str, Any]]:
        return json.loads(self.ice_servers)  # validated in load_settings


def normalise_database_url(url: str) -> str:
    """Accept the usual spellings and return the async driver's URL."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> None:
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise ConfigError(name, f"{value!r} is not a URL starting with {' or '.join(s + '://' for s in schemes)}")


def _validate(s: Settings) -> Settings:
    if not s.public_url:
        s = replace(s, public_url=f"http://{s.host}:{s.port}")
    _check_url("DUET_PUBLIC_URL", s.public_url, ("http", "https"))
    if s.public_url.endswith("/"):
        s = replace(s, public_url=s.public_url.rstrip("/"))
    if s.database_url:
        url = normalise_database_url(s.database_url)
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ConfigError("DUET_DATABASE_URL", f"{s.database_url!r}: use postgresql://... or sqlite:///path")
    if not 0 < s.port < 65536:
        raise ConfigError("DUET_PORT", f"{s.port} is not a TCP port (1-65535)")
    try:
        ZoneInfo(s.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("DUET_TIME_ZONE", f"{s.time_zone!r} is not a known time zone such as Europe/London") from None
    if s.store and not s.store.startswith("s3://"):
        raise ConfigError("DUET_STORE", f"{s.store!r}: leave empty for the folder store or use s3://bucket")
    try:
        ice = json.loads(s.ice_servers)
    except json.JSONDecodeError as exc:
        raise ConfigError("DUET_ICE_SERVERS", f"not valid JSON ({exc.msg})") from None
    if not isinstance(ice, list) or not all(isinstance(i, dict) and "urls" in i for i in ice):
        raise ConfigError("DUET_ICE_SERVERS", 'must be a JSON list like [{"urls": "stun:stun.example.org"}]')
    if s.media_workers < 0:
        raise ConfigError("DUET_MEDIA_WORKERS", f"{s.media_workers}: 0 (media in the web process) or more workers")
    if not 0 <= s.evening_hour <= 23:
        raise ConfigError("DUET_EVENING_HOUR", f"{s.evening_hour} is not an hour of the day (0-23)")
    for name in ("session_idle_minutes", "session_absolute_hours", "login_max_failures", "link_valid_days",
                 "login_account_max_failures", "login_address_max_failures", "login_lockout_minutes",
                 "totp_max_failures", "totp_account_max_failures", "totp_lockout_minutes", "password_workers",
                 "audit_checkpoint_every"):
        if getattr(s, name) <= 0:
            raise ConfigError("DUET_" + name.upper(), "must be a positive number")
    for name in ("early_join_minutes", "late_grace_minutes", "overdue_grace_minutes", "overdue_escalate_minutes"):
        if getattr(s, name) < 0:
            raise ConfigError("DUET_" + name.upper(), f"{getattr(s, name)} minutes: must be 0 or more")
    if s.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError("DUET_LOG_LEVEL", "use DEBUG, INFO, WARNING or ERROR")
    return s




def _convert(name: str, kind: Any, raw: Any) -> Any:
    env_name = "DUET_" + name.upper()
    if kind in (int, "int"):
        if isinstance(raw, bool):
            raise ConfigError(env_name, f"{raw!r} is not a whole number")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(env_name, f"{raw!r} is not a whole number") from None
    if kind in (Path, "Path"):
        if not isinstance(raw, str | Path):
            raise ConfigError(env_name, f"{raw!r} is not a path")
        return Path(raw)
    if not isinstance(raw, str):
        raise ConfigError(env_name, f"{raw!r} is not text")
    return raw


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build the settings from defaults, an optional TOML file, the environment and overrides.

    Raises:
        ConfigError: naming the first setting with a wrong value or an unknown key.
    """
    env = os.environ if environ is None else environ
    known = {f.name: f.type for f in fields(Settings) if f.name != "extra"}
    values: dict[str, Any] = {}
    path = config_file or (Path(env["DUET_CONFIG"]) if env.get("DUET_CONFIG") else None)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("--config", f"file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML ({exc})") from None
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(key, f"unknown setting in {path}")
            values[key] = _convert(key, known[key], raw)
    for key, raw in env.items():
        if not key.startswith("DUET_") or key == "DUET_CONFIG":
            continue
        name = key[5:].lower()
        if name not in known:
            raise ConfigError(key, "unknown setting (see the README's configuration table)")
        values[name] = _convert(name, known[name], raw)
    for key, raw in overrides.items():
        if raw is not None:
            values[key] = _convert(key, known[key], raw)
    return _validate(Settings(**values))
