"""Build the mail parts from the settings once, at start-up (STYLE.md #6, #7).

Mistakes in DUET_MAIL_URL or DUET_MAIL_FROM become ``ConfigError`` naming the
setting, so ``duet serve`` stops with one clear line instead of failing on the
first email.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.config import ConfigError, Settings
from server.errors import InvalidInput
from server.mail.messages import Organisation
from server.mail.transports import MailTransport, transport_from_url


@dataclass(frozen=True)
class MailSetup:
    transport: MailTransport
    organisation: Organisation


def mail_from_settings(settings: Settings, *, contact: str | None = None) -> MailSetup:
    """The transport DUET_MAIL_URL names and the sender identity from DUET_MAIL_FROM / DUET_ORGANISATION."""
    try:
        transport = transport_from_url(settings.mail_url, settings.home)
    except InvalidInput as exc:
        raise ConfigError("DUET_MAIL_URL", exc.detail.removeprefix("DUET_MAIL_URL").lstrip(": ")) from None
    organisation = Organisation(settings.organisation, settings.mail_from, contact=contact)
    try:
        organisation.sender  # noqa: B018 - parse now so a bad DUET_MAIL_FROM stops start-up
    except InvalidInput as exc:
        raise ConfigError("DUET_MAIL_FROM", exc.detail) from None
    return MailSetup(transport=transport, organisation=organisation)
