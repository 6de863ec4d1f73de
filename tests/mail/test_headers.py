"""Header values: addresses, names and keys are checked before any message exists."""

from __future__ import annotations

import pytest

from server.errors import InvalidInput
from server.mail.headers import (
    header_text,
    mailbox,
    message_id,
    parse_mailbox,
    validate_address,
)


def test_valid_addresses_are_normalised() -> None:
    assert validate_address("  Jo.Parent@Example.ORG ") == "Jo.Parent@example.org"
    assert validate_address("zoë@exämple.org") == "zoë@exämple.org"


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("jo.example.org", "must have an @-sign"),
        ("jo@", "There must be something after the @-sign"),
        ("jo@@example.org", "@"),
        ("jo parent@example.org", "invalid characters before the @-sign"),
        ("jo@example", "should have a period"),
        ("jo@printer.local", "special-use or reserved"),
        ("", "is empty"),
        ("a" * 250 + "@example.org", "longer than 254"),
    ],
)
def test_invalid_addresses_say_what_is_wrong(address: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_address(address, field="guardian email")
    assert says in caught.value.detail
    assert caught.value.field == "guardian email"


def test_reserved_domains_only_where_allowed() -> None:
    """The embedded default sender is no-reply@duet.example.org; families never get .local addresses."""
    sender = parse_mailbox("Duet <no-reply@duet.example.org>", field="DUET_MAIL_FROM")
    assert sender.addr_spec == "no-reply@duet.example.org"
    with pytest.raises(InvalidInput, match="special-use"):
        mailbox("Jo", "jo@home.local")
    with pytest.raises(InvalidInput, match="not a valid email address"):
        parse_mailbox("Duet", field="DUET_MAIL_FROM")


def test_display_names_are_quoted_by_the_email_package() -> None:
    addr = mailbox('Jo "JJ" Parent, Esq.', "jo@example.org")
    assert str(addr) == '"Jo \\"JJ\\" Parent, Esq." <jo@example.org>'


@pytest.mark.parametrize("value", ["Bob\r\nBcc: x@evil.example", "Bob\nX", "Bob\rX", "Bob\x00", "Bob\u2028X"])
def test_line_breaks_and_control_characters_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="line break or control character"):
        header_text(value, field="name")
    with pytest.raises(InvalidInput, match="line break or control character"):
        mailbox(value, "bob@example.org")


def test_message_ids_are_deterministic_and_safe() -> None:
    assert message_id("booking-42.invite.guardian-7.v3", "duet.example.org") == (
        "<booking-42.invite.guardian-7.v3@duet.example.org>"
    )
    for bad in ("a b", "a>b", "a@b", "", "-x", "x" * 200):
        with pytest.raises(InvalidInput):
            message_id(bad, "duet.example.org")
    with pytest.raises(InvalidInput, match="mail domain"):
        message_id("ok", "bad domain>")
