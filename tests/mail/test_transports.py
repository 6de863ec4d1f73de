"""Transports: the folder of .eml files and real SMTP (aiosmtpd on loopback)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from server.errors import InvalidInput
from server.mail.messages import Organisation, Recipient, staff_alert
from server.mail.transports import (
    FolderTransport,
    PermanentMailError,
    SmtpTransport,
    TransientMailError,
    transport_from_url,
)
from tests.support.smtp import SmtpServerFactory, SmtpTestServer, TlsPair

ORG = Organisation("Duet Music Service", "Duet <no-reply@duet.example.org>")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def alert(
    key: str = "alert-1", to: str = "lead@example.org", line: str = "Visit 7 is overdue."
) -> EmailMessage:
    return staff_alert(
        ORG, Recipient("Lee Lead", to), key=key, now=NOW, subject="Overdue visit", lines=[line]
    )


def smtp_for(server: SmtpTestServer, **kwargs: object) -> SmtpTransport:
    transport = transport_from_url(server.url, Path("/nonexistent"), **kwargs)  # type: ignore[arg-type]
    assert isinstance(transport, SmtpTransport)
    return transport


# ---- folder -------------------------------------------------------------


async def test_folder_writes_one_eml_per_message_id_and_overwrites_on_resend(tmp_path: Path) -> None:
    transport = transport_from_url("", tmp_path)
    assert isinstance(transport, FolderTransport)
    await transport.send(alert("alert-1", line="first try"))
    await transport.send(alert("alert-1", line="second try"))
    await transport.send(alert("alert-2"))

    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert files == ["alert-1@duet.example.org.eml", "alert-2@duet.example.org.eml"]
    parsed = message_from_bytes((tmp_path / "outbox" / files[0]).read_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == "<alert-1@duet.example.org>"
    body = parsed.get_body(("plain",))
    assert body is not None and "second try" in body.get_content()


async def test_folder_url_with_path_and_unwritable_folder_is_transient(tmp_path: Path) -> None:
    transport = transport_from_url(f"file://{tmp_path}/mail", Path("/unused"))
    await transport.send(alert())
    assert (tmp_path / "mail" / "alert-1@duet.example.org.eml").exists()

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(TransientMailError, match="cannot write"):
        await FolderTransport(blocker / "outbox").send(alert())


async def test_folder_refuses_message_without_message_id(tmp_path: Path) -> None:
    msg = alert()
    del msg["Message-ID"]
    with pytest.raises(PermanentMailError):
        await FolderTransport(tmp_path).send(msg)


# ---- DUET_MAIL_URL ------------------------------------------------------


def test_url_parsing_builds_the_right_transport(tmp_path: Path) -> None:
    assert isinstance(transport_from_url("file:", tmp_path), FolderTransport)
    t = transport_from_url("smtp://user%40org:p%3Ass@mail.example.org:587?starttls=1", tmp_path)
    assert isinstance(t, SmtpTransport)
    assert (t.host, t.port, t.username, t.starttls, t.implicit_tls) == (
        "mail.example.org",
        587,
        "user@org",
        True,
        False,
    )
    t = transport_from_url("smtps://u:p@mail.example.org", tmp_path)
    assert isinstance(t, SmtpTransport) and t.implicit_tls and t.port == 465 and not t.starttls
    t = transport_from_url("smtp://127.0.0.1:2525", tmp_path)
    assert isinstance(t, SmtpTransport) and not t.starttls and t.port == 2525
    # A remote host gets STARTTLS unless told otherwise.
    t = transport_from_url("smtp://relay.example.org", tmp_path)
    assert isinstance(t, SmtpTransport) and t.starttls and t.port == 587


def test_password_never_in_repr(tmp_path: Path) -> None:
    t = transport_from_url("smtp://alice:s3cret-pw@mail.example.org:587?starttls=1", tmp_path)
    assert "s3cret-pw" not in repr(t)
    assert "alice:***@mail.example.org" in repr(t)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://mail.example.org", "must start with smtp://"),
        ("smtp://", "no host name"),
        ("smtp://mail.example.org:99999", "not a valid URL"),
        ("smtp://mail.example.org?tls=1", "unknown option"),
        ("smtp://mail.example.org?starttls=maybe", "must be 1 or 0"),
        ("smtps://u:p@mail.example.org?starttls=1", "already uses TLS"),
        ("smtp://u:hunter2@mail.example.org?starttls=0", "without TLS"),
        ("smtp://u@mail.example.org", "both user and password"),
        ("smtp://mail.example.org/path", "must not have a path"),
        ("smtp://mail.example.org?timeout=abc", "timeout"),
    ],
)
def test_bad_urls_are_refused_naming_the_setting(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        transport_from_url(url, tmp_path)
    assert "DUET_MAIL_URL" in caught.value.detail
    assert says in caught.value.detail
    assert "hunter2" not in caught.value.detail


# ---- SMTP ---------------------------------------------------------------


async def test_smtp_delivers_to_a_real_server(smtp_server: SmtpTestServer) -> None:
    await smtp_for(smtp_server).send(alert(to="lead@example.org"))
    [got] = smtp_server.messages
    assert got.mail_from == "no-reply@duet.example.org"
    assert got.rcpt_tos == ("lead@example.org",)
    assert got.message["Subject"] == "[Duet Music Service] Overdue visit"


async def test_unknown_user_550_is_permanent_with_server_text(smtp_server: SmtpTestServer) -> None:
    smtp_server.reject.add("gone@example.org")
    with pytest.raises(PermanentMailError) as caught:
        await smtp_for(smtp_server).send(alert(to="gone@example.org"))
    assert caught.value.code == 550
    assert "User unknown" in caught.value.reason
    assert smtp_server.messages == []


async def test_busy_mailbox_451_is_transient(smtp_server: SmtpTestServer) -> None:
    smtp_server.defer.add("busy@example.org")
    with pytest.raises(TransientMailError) as caught:
        await smtp_for(smtp_server).send(alert(to="busy@example.org"))
    assert caught.value.code == 451


async def test_server_down_is_transient_and_delivery_works_when_it_returns(
    smtp_server: SmtpTestServer,
) -> None:
    transport = smtp_for(smtp_server)
    smtp_server.stop()
    with pytest.raises(TransientMailError, match="cannot reach"):
        await transport.send(alert())
    smtp_server.start()
    await transport.send(alert())
    assert len(smtp_server.messages) == 1


async def test_starttls_with_auth(smtp_server_factory: SmtpServerFactory, smtp_tls: TlsPair) -> None:
    server = smtp_server_factory(starttls=smtp_tls.server, auth=("duet", "pa ss"))
    await smtp_for(server, tls_context=smtp_tls.client).send(alert())
    assert server.logins == ["duet"]
    assert len(server.messages) == 1


async def test_wrong_password_is_transient_so_mail_waits_for_the_fix(
    smtp_server_factory: SmtpServerFactory, smtp_tls: TlsPair
) -> None:
    server = smtp_server_factory(starttls=smtp_tls.server, auth=("duet", "right"))
    url = server.url.replace("duet:right@", "duet:wrong@")
    transport = transport_from_url(url, Path("/unused"), tls_context=smtp_tls.client)
    with pytest.raises(TransientMailError, match="login refused"):
        await transport.send(alert())
    assert server.messages == []


async def test_untrusted_certificate_is_refused(
    smtp_server_factory: SmtpServerFactory, smtp_tls: TlsPair
) -> None:
    server = smtp_server_factory(starttls=smtp_tls.server)
    with pytest.raises(TransientMailError):
        await smtp_for(server).send(alert())  # default trust store does not know our test CA
    assert server.messages == []


async def test_implicit_tls_smtps(smtp_server_factory: SmtpServerFactory, smtp_tls: TlsPair) -> None:
    server = smtp_server_factory(implicit_tls=smtp_tls.server)
    await smtp_for(server, tls_context=smtp_tls.client).send(alert())
    assert len(server.messages) == 1


# ---- one contract for every transport ------------------------


@pytest.mark.parametrize("kind", ["folder", "smtp"])
async def test_every_transport_delivers_the_same_message(
    kind: str, smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    url = "" if kind == "folder" else smtp_server.url
    sent = alert("contract-1", line="same words everywhere")
    await transport_from_url(url, tmp_path).send(sent)
    if kind == "folder":
        raw = (tmp_path / "outbox" / "contract-1@duet.example.org.eml").read_bytes()
    else:
        [got] = smtp_server.messages
        raw = got.raw
    parsed = message_from_bytes(raw, policy=default)
    assert isinstance(parsed, EmailMessage)
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        assert parsed[header] == sent[header]
    body = parsed.get_body(("plain",))
    assert body is not None and "same words everywhere" in body.get_content()
