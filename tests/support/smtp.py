"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests, with switches for the bad days.

``SmtpTestServer`` collects every accepted message (envelope and parsed email),
can refuse chosen recipients with 550 or defer them with 451, can go down and
come back on the same port, and can require STARTTLS/implicit TLS and AUTH.

Use the ``smtp_server`` fixture for a plain server, ``smtp_server_factory`` for
TLS or AUTH variants (import both into a conftest.py).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.server.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address.lower() in self.server.defer:
            return f"451 4.3.0 <{address}>: Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        msg = message_from_bytes(raw, policy=default)
        assert isinstance(msg, EmailMessage)
        self.server.messages.append(ReceivedMail(str(envelope.mail_from), tuple(envelope.rcpt_tos), raw, msg))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsPair:
    """A self-signed certificate for 127.0.0.1: a server context and a client context that trusts it."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def self_signed_tls(folder: Path) -> TlsPair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = folder / "smtp-cert.pem"
    key_file = folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return TlsPair(server=server, client=client)


class SmtpTestServer:
    """One aiosmtpd controller on a fixed loopback port, restartable for "server down" tests."""

    def __init__(
        self,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.reject: set[str] = set()
        self.defer: set[str] = set()
        self.logins: list[str] = []
        self._starttls = starttls
        self._implicit = implicit_tls
        self._auth = auth
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        scheme = "smtps" if self._implicit else "smtp"
        who = f"{self._auth[0]}:{self._auth[1]}@" if self._auth else ""
        tls = "?starttls=1" if self._starttls else "?starttls=0"
        return f"{scheme}://{who}{self.host}:{self.port}{'' if self._implicit else tls}"

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self._auth is not None
        if isinstance(auth_data, LoginPassword):
            ok = (auth_data.login.decode(), auth_data.password.decode()) == self._auth
            if ok:
                self.logins.append(auth_data.login.decode())
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {}
        if self._starttls is not None:
            kwargs.update(tls_context=self._starttls, require_starttls=True)
        if self._implicit is not None:
            kwargs.update(ssl_context=self._implicit, server_hostname="127.0.0.1")
        if self._auth is not None:
            kwargs.update(
                auth_required=True,
                auth_require_tls=self._starttls is not None,  # implicit TLS: aiosmtpd cannot tell
                authenticator=self._authenticate,
            )
        controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Go down: connections to the port are refused until ``start`` again."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received_by(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.messages if address in m.rcpt_tos]


class SmtpServerFactory(Protocol):
    def __call__(
        self,
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
    ) -> SmtpTestServer: ...


@pytest.fixture
def smtp_server_factory() -> Iterator[SmtpServerFactory]:
    """Start SMTP servers with chosen TLS/AUTH; all are stopped after the test."""
    started: list[SmtpTestServer] = []

    def make(
        *,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
    ) -> SmtpTestServer:
        server = SmtpTestServer(starttls=starttls, implicit_tls=implicit_tls, auth=auth)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: SmtpServerFactory) -> SmtpTestServer:
    """A plain (no TLS, no AUTH) SMTP server on 127.0.0.1 collecting what it receives."""
    return smtp_server_factory()


@pytest.fixture
def smtp_tls(tmp_path: Path) -> TlsPair:
    return self_signed_tls(tmp_path)
