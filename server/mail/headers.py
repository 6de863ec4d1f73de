"""Safe values for mail headers: addresses, display names, subjects, Message-IDs.

Every value that reaches a header passes through here, so header injection
("Bob\\r\\nBcc: x@evil") is refused with ``InvalidInput`` before a message exists
(RFC 5322 section 2.2: a header field ends at CRLF, so CR and LF may never come
from user input). Addresses are checked with email-validator without DNS lookups:
deliverability is the SMTP server's job, reported back as a bounce.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email

from server.errors import InvalidInput

MAX_NAME = 200
MAX_SUBJECT = 250
MAX_ADDRESS = 254  # RFC 5321 section 4.5.3.1.3, path limit less the brackets
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]")
_LOOSE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@"
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,180}$")
_DOMAIN = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)


def header_text(value: str, *, field: str, limit: int = MAX_NAME) -> str:
    """Return ``value`` stripped, refusing line breaks, control characters and oversize text."""
    if _CONTROL.search(value):
        raise InvalidInput(
            f"The {field} contains a line break or control character, which is not allowed.", field=field
        )
    text = value.strip()
    if not text:
        raise InvalidInput(f"The {field} is empty.", field=field)
    if len(text) > limit:
        raise InvalidInput(f"The {field} is longer than {limit} characters.", field=field)
    return text


def subject_text(value: str) -> str:
    """A subject line: one line, at most 250 characters."""
    return header_text(value, field="subject", limit=MAX_SUBJECT)


def validate_address(address: str, *, field: str = "email", allow_reserved: bool = False) -> str:
    """Return the normalised form of an email address, or raise ``InvalidInput`` saying why.

    No DNS lookups (``check_deliverability=False``): a typo in the domain shows up
    as a bounce, recorded on the outbox row, not as a slow request. Reserved
    domains (``.local``, ``.test``, ``localhost``, RFC 6761) are refused unless
    ``allow_reserved``: they are right for the embedded default sender and demos,
    never for a family's address.
    """
    if _CONTROL.search(address):
        raise InvalidInput(f"The {field} address contains a line break or control character.", field=field)
    candidate = address.strip()
    if not candidate:
        raise InvalidInput(f"The {field} address is empty.", field=field)
    if len(candidate) > MAX_ADDRESS:
        raise InvalidInput(f"The {field} address is longer than {MAX_ADDRESS} characters.", field=field)
    try:
        checked = validate_email(candidate, check_deliverability=False, allow_display_name=False)
    except EmailNotValidError as exc:
        if allow_reserved and _LOOSE.match(candidate):
            return candidate
        raise InvalidInput(f"'{candidate}' is not a valid email address: {exc}", field=field) from None
    return checked.normalized


def mailbox(name: str | None, address: str, *, field: str = "email", allow_reserved: bool = False) -> Address:
    """A header ``Address`` built from checked parts, so quoting is the email package's job."""
    addr = validate_address(address, field=field, allow_reserved=allow_reserved)
    display = header_text(name, field=f"{field} name") if name else ""
    local, _, domain = addr.rpartition("@")
    return Address(display_name=display, username=local, domain=domain)


def parse_mailbox(value: str, *, field: str) -> Address:
    """Parse a configured ``Name <addr@host>`` string (for example DUET_MAIL_FROM) into an ``Address``."""
    if _CONTROL.search(value):
        raise InvalidInput(f"{field} contains a line break or control character.", field=field)
    name, addr = parseaddr(value)
    if not addr:
        raise InvalidInput(
            f"{field} must look like 'Name <address@example.org>', got {value!r}.", field=field
        )
    return mailbox(name or None, addr, field=field, allow_reserved=True)


def message_id(key: str, domain: str) -> str:
    """The deterministic Message-ID ``<key@domain>`` for one outbox row.

    The key names the row ("booking-42.invite.guardian-7.v3"), so a retry after a
    crash sends the same Message-ID and receivers (and the folder transport) can
    recognise the duplicate (RFC 5322 section 3.6.4).
    """
    if not _KEY.match(key):
        raise InvalidInput(
            "A message key may only use letters, digits, '.', '_' and '-' (at most 181 characters).",
            field="message_key",
        )
    check_domain(domain)
    return f"<{key}@{domain}>"


def check_domain(domain: str) -> str:
    """A plain DNS name for Message-ID and calendar UID right-hand sides."""
    if not _DOMAIN.match(domain) or len(domain) > 253:
        raise InvalidInput(f"{domain!r} is not a usable mail domain name.", field="domain")
    return domain
