"""Start-up: the mail settings are checked once and name the setting when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, Settings
from server.mail.transports import FolderTransport, SmtpTransport
from server.services import mail_from_settings


def test_defaults_write_eml_files_under_home(tmp_path: Path) -> None:
    setup = mail_from_settings(Settings(home=tmp_path))
    assert isinstance(setup.transport, FolderTransport)
    assert setup.transport.folder == tmp_path / "outbox"
    assert setup.organisation.sender.addr_spec == "no-reply@duet.example.org"
    assert setup.organisation.mail_domain == "duet.example.org"


def test_smtp_url_and_errors_name_the_setting(tmp_path: Path) -> None:
    setup = mail_from_settings(
        Settings(home=tmp_path, mail_url="smtp://u:pw@mail.example.org:587?starttls=1")
    )
    assert isinstance(setup.transport, SmtpTransport)
    with pytest.raises(ConfigError) as caught:
        mail_from_settings(Settings(home=tmp_path, mail_url="smtp://u:pw@mail.example.org?starttls=0"))
    assert caught.value.name == "DUET_MAIL_URL" and "pw" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        mail_from_settings(Settings(home=tmp_path, mail_from="Duet <no-reply>\r\nBcc: x@evil.example"))
    assert caught.value.name == "DUET_MAIL_FROM"
