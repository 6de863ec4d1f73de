"""Where finished messages go: a folder of .eml files (embedded default) or an SMTP server.

Both sit behind ``MailTransport``. Failures are translated here into
two kinds the outbox sender acts on: ``TransientMailError`` (try again
later: no connection, timeouts, 4xx replies) and ``PermanentMailError`` (5xx replies
such as "550 unknown user": retrying cannot help, a person must fix the address).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
import ssl
import tempfile
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib

from server.errors import InvalidInput
from server.keys import private_folder

SETTING = "DUET_MAIL_URL"


class MailError(Exception):
    """A message could not be delivered to the next hop."""

    def __init__(self, reason: str, *, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientMailError(MailError):
    """Try again later: the server is down, busy or answered 4xx (RFC 5321 section 4.2.1)."""


class PermanentMailError(MailError):
    """The server refused for good (5xx); ``reason`` carries its reply text."""


class MailTransport(Protocol):
    """Hands one finished message to the next hop."""

    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` or raise ``TransientMailError`` / ``PermanentMailError``."""
        ...

    async def close(self) -> None:
        """Release what the transport holds open (process shutdown)."""
        ...


def _envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """Sender and recipients from the headers; refuse a message without a Message-ID or recipient."""
    sender = message["Sender"] or message["From"]
    if not sender or not message["Message-ID"]:
        raise PermanentMailError("message has no From or Message-ID header")
    recipients = [
        a.addr_spec for field in ("To", "Cc", "Bcc") for a in getattr(message[field], "addresses", ())
    ]
    if not recipients:
        raise PermanentMailError("message has no recipients")
    return sender.addresses[0].addr_spec, recipients


class FolderTransport:
    """Writes each message to ``<folder>/<message-id>.eml``; the embedded default.

    One file per Message-ID, written to a temporary file and renamed into place,
    so a re-send of the same outbox row overwrites its file instead of adding a
    second one, and a reader never sees half a message.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __repr__(self) -> str:
        return f"FolderTransport({str(self.folder)!r})"

    async def close(self) -> None:
        """Nothing is held open: each message is one file."""

    def path_for(self, message: EmailMessage) -> Path:
        """The file a message with this Message-ID is written to."""
        mid = str(message["Message-ID"] or "").strip().strip("<>")
        if not mid:
            raise PermanentMailError("message has no Message-ID header")
        name = re.sub(r"[^A-Za-z0-9._@-]", "_", mid)[:200]
        return self.folder / f"{name}.eml"

    async def send(self, message: EmailMessage) -> None:
        _envelope(message)
        target = self.path_for(message)
        data = message.as_bytes(policy=SMTP)
        try:
            await asyncio.to_thread(self._write, target, data)
        except OSError as exc:
            raise TransientMailError(f"cannot write {target}: {exc.strerror or exc}") from None

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        private_folder(target.parent)  # mkstemp makes the .eml 0600; the folder is 0700
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class SmtpTransport:
    """Sends through an SMTP relay with aiosmtplib: plain (loopback only), STARTTLS or implicit TLS.

    The password is kept out of ``repr`` so it never reaches a log line.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        implicit_tls: bool = False,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if starttls and implicit_tls:
            raise InvalidInput(
                f"{SETTING}: choose STARTTLS or implicit TLS (smtps://), not both.", field=SETTING
            )
        if (username is None) != (password is None):
            raise InvalidInput(f"{SETTING}: give both a user name and a password, or neither.", field=SETTING)
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.timeout = timeout
        self._tls_context = tls_context

    def __repr__(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        who = f"{self.username}:***@" if self.username else ""
        tls = "?starttls=1" if self.starttls else ""
        return f"SmtpTransport('{scheme}://{who}{self.host}:{self.port}{tls}')"

    @staticmethod
    async def _starttls(client: aiosmtplib.SMTP) -> None:
        """STARTTLS (RFC 3207); on failure drop the plain socket at once.

        After a failed handshake asyncio leaves the plain transport "closing" with
        unsent bytes and aiosmtplib forgets it, so the socket would leak.
        """
        plain = client.transport
        try:
            await client.starttls()
        except BaseException:
            if isinstance(plain, asyncio.WriteTransport):
                plain.abort()
            raise

    async def close(self) -> None:
        """Nothing is held open: each delivery opens and ends its own connection."""

    async def send(self, message: EmailMessage) -> None:
        sender, recipients = _envelope(message)
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.implicit_tls,
            start_tls=False,  # done below, so a failed handshake cannot leak the socket
            tls_context=self._tls_context,
            timeout=self.timeout,
        )
        try:
            try:
                await client.connect()
                if self.starttls:
                    await self._starttls(client)
                if self.username is not None and self._password is not None:
                    await client.login(self.username, self._password)
                errors, _reply = await client.send_message(message, sender=sender, recipients=recipients)
                with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                    # Not ``client.quit()``: it closes TLS gracefully, which leaks the socket if the
                    # loop stops first. The server has the message; a failed goodbye must not resend it.
                    await client.execute_command(b"QUIT")
            finally:
                # Abort rather than close: a TLS close waits for close_notify over several loop
                # turns and leaks the socket if the loop stops first.
                if isinstance(client.transport, asyncio.WriteTransport):
                    client.transport.abort()
                client.close()
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _classify_refusals(exc.recipients) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            # A wrong password is a setting to fix, not a bad message: keep the row and retry.
            raise TransientMailError(
                f"SMTP login refused ({exc.code} {exc.message})", code=exc.code
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            cls = PermanentMailError if 500 <= exc.code < 600 else TransientMailError
            raise cls(f"{exc.code} {exc.message}", code=exc.code) from None
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            raise TransientMailError(f"cannot reach {self.host}:{self.port}: {exc}") from None
        except aiosmtplib.SMTPException as exc:
            raise TransientMailError(f"SMTP session with {self.host}:{self.port} failed: {exc}") from None
        if errors:
            # Some recipients accepted, some refused; the accepted ones have the mail, so
            # a retry would duplicate it: report the refusals as permanent.
            refused = [aiosmtplib.SMTPRecipientRefused(r.code, r.message, rcpt) for rcpt, r in errors.items()]
            raise _classify_refusals(refused, partial=True)


def _classify_refusals(
    refusals: list[aiosmtplib.SMTPRecipientRefused], *, partial: bool = False
) -> MailError:
    text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in refusals)
    if partial or any(500 <= r.code < 600 for r in refusals):
        code = max(r.code for r in refusals)
        return PermanentMailError(f"recipient refused: {text}", code=code)
    return TransientMailError(f"recipient deferred: {text}", code=refusals[0].code)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag(value: str, name: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise InvalidInput(f"{SETTING}: {name}={value!r} must be 1 or 0.", field=SETTING)


def transport_from_url(url: str, home: Path, *, tls_context: ssl.SSLContext | None = None) -> MailTransport:
    """Build the transport DUET_MAIL_URL asks for.

    ``""`` or ``file:`` -> .eml files in ``<home>/outbox``; ``file:///path`` -> that folder;
    ``smtp://user:pass@host:587?starttls=1``; ``smtps://user:pass@host:465``;
    ``smtp://127.0.0.1:2525`` (plain, loopback only). STARTTLS is required by default
    for any host that is not loopback, and a password is never sent without TLS.
    Query options: ``starttls=0|1``, ``timeout=<seconds>``.
    """
    url = url.strip()
    if url in ("", "file:", "file://"):
        return FolderTransport(home / "outbox")
    try:
        parts = urlsplit(url)
        port_given = parts.port
    except ValueError as exc:
        raise InvalidInput(f"{SETTING} is not a valid URL: {exc}.", field=SETTING) from None
    if parts.scheme == "file":
        if parts.netloc or not parts.path:
            raise InvalidInput(f"{SETTING}: use file: or file:///absolute/folder.", field=SETTING)
        return FolderTransport(Path(unquote(parts.path)))
    if parts.scheme not in ("smtp", "smtps"):
        raise InvalidInput(
            f"{SETTING} must start with smtp://, smtps:// or file: (got {parts.scheme or 'no scheme'!r}).",
            field=SETTING,
        )
    host = parts.hostname
    if not host:
        raise InvalidInput(f"{SETTING} has no host name, e.g. smtp://mail.example.org:587.", field=SETTING)
    if parts.path not in ("", "/") or parts.fragment:
        raise InvalidInput(f"{SETTING} must not have a path; options go after '?'.", field=SETTING)
    implicit = parts.scheme == "smtps"
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = set(options) - {"starttls", "timeout"}
    if unknown:
        raise InvalidInput(f"{SETTING}: unknown option(s) {', '.join(sorted(unknown))}.", field=SETTING)
    loopback = _is_loopback(host)
    if "starttls" in options:
        starttls = _flag(options["starttls"], "starttls")
    else:
        starttls = not implicit and not loopback
    if implicit and starttls:
        raise InvalidInput(f"{SETTING}: smtps:// already uses TLS; drop starttls=1.", field=SETTING)
    timeout = 30.0
    if "timeout" in options:
        try:
            timeout = float(options["timeout"])
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 600:
            raise InvalidInput(f"{SETTING}: timeout must be a number of seconds, 1 to 600.", field=SETTING)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if (username is None) != (password is None):
        raise InvalidInput(
            f"{SETTING}: give both user and password (smtp://user:pass@host), or neither.", field=SETTING
        )
    if username and not (implicit or starttls) and not loopback:
        raise InvalidInput(
            f"{SETTING}: refusing to send a password without TLS; use starttls=1 or smtps://.", field=SETTING
        )
    port = port_given or (465 if implicit else 587 if starttls else 25)
    return SmtpTransport(
        host,
        port,
        username=username,
        password=password,
        starttls=starttls,
        implicit_tls=implicit,
        timeout=timeout,
        tls_context=tls_context,
    )
