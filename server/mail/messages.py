"""Build the emails Duet sends, as finished ``EmailMessage`` objects ready for the outbox.

Each builder takes small frozen dataclasses and returns a message with a plain text
part and an HTML alternative saying the same thing (RFC 2046 section 5.1.4), a
deterministic Message-ID from the outbox key, and for session emails an .ics
attachment (``calendar.py``). Every header value goes through ``headers.py``, so a
name like "Bob\\r\\nBcc: x@evil" is refused before a message exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from enum import StrEnum

from server.errors import InvalidInput
from server.mail.calendar import CalendarEvent, Method, build_ics
from server.mail.headers import header_text, mailbox, message_id, parse_mailbox, subject_text
from server.mail.templates import Block, Button, Para, checked_url, render_html, render_text
from server.mail.wording import concerns, family_duties, format_short, format_when, privacy_notice, zone

MAX_LINES = 50


class SessionKind(StrEnum):
    LIVE_VIDEO = "live_video"
    LIVE_AUDIO = "live_audio"

    @property
    def label(self) -> str:
        return "live video session" if self is SessionKind.LIVE_VIDEO else "live audio session"


@dataclass(frozen=True)
class Organisation:
    """Who the mail comes from. ``from_address`` is DUET_MAIL_FROM, e.g. ``Duet <no-reply@duet.example.org>``.

    ``domain`` is the right-hand side of Message-IDs and calendar UIDs; empty means
    the domain of ``from_address``. ``contact`` is how to reach a person (shown in
    the "if you have a concern" paragraph).
    """

    name: str
    from_address: str
    domain: str = ""
    contact: str | None = None

    @property
    def sender(self) -> Address:
        return parse_mailbox(self.from_address, field="DUET_MAIL_FROM")

    @property
    def mail_domain(self) -> str:
        return self.domain or self.sender.domain


@dataclass(frozen=True)
class SessionInfo:
    booking_id: int
    kind: SessionKind
    start: datetime  # aware, UTC
    duration_minutes: int
    practitioner_name: str
    client_first_name: str


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str
    time_zone: str = "Europe/London"


@dataclass(frozen=True)
class Links:
    """Personal links for one recipient; ``consent_url`` only while consent is missing."""

    join_url: str
    check_url: str
    consent_url: str | None = None


def _checked_session(session: SessionInfo) -> SessionInfo:
    if session.start.tzinfo is None:
        raise InvalidInput("The session start must be timezone-aware.", field="start")
    if not 0 < session.duration_minutes <= 24 * 60:
        raise InvalidInput("A session lasts between 1 minute and 24 hours.", field="duration_minutes")
    header_text(session.practitioner_name, field="practitioner name")
    header_text(session.client_first_name, field="client first name")
    return session


def _assemble(
    org: Organisation,
    to: Recipient,
    *,
    key: str,
    subject: str,
    blocks: Sequence[Block],
    now: datetime,
    ics: tuple[bytes, Method] | None = None,
) -> EmailMessage:
    if now.tzinfo is None:
        raise InvalidInput("The message date must be timezone-aware.", field="now")
    zone(to.time_zone)
    msg = EmailMessage(policy=SMTP)
    msg["From"] = org.sender
    msg["To"] = mailbox(to.name, to.email, field="recipient")
    msg["Subject"] = subject_text(subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(key, org.mail_domain)
    # RFC 3834: tell auto-responders (out-of-office) not to reply to transactional mail.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(render_text(blocks))
    msg.add_alternative(render_html(blocks, title=subject), subtype="html")
    if ics is not None:
        data, method = ics
        msg.add_attachment(
            data,
            maintype="text",
            subtype="calendar",
            params={"method": method.value, "charset": "utf-8"},
            filename="cancelled.ics" if method is Method.CANCEL else "session.ics",
        )
    return msg


def _event(
    org: Organisation,
    session: SessionInfo,
    to: Recipient,
    *,
    join_url: str | None,
    sequence: int,
    now: datetime,
) -> CalendarEvent:
    desc = (
        f"{session.kind.label.capitalize()} with {session.practitioner_name} for {session.client_first_name}."
    )
    if join_url:
        desc += f"\n\nJoin with your personal link: {join_url}"
    return CalendarEvent(
        booking_id=session.booking_id,
        start=session.start,
        duration_minutes=session.duration_minutes,
        summary=f"{session.client_first_name}: {session.kind.label} with {session.practitioner_name}",
        description=desc,
        organizer=org.sender,
        attendee=mailbox(to.name, to.email, field="recipient"),
        sequence=sequence,
        stamp=now,
        url=join_url,
    )


def _links(session: SessionInfo, links: Links) -> list[Block]:
    blocks: list[Block] = [
        Button("Join the session", checked_url(links.join_url, field="join link")),
        Button("Check your device and connection", checked_url(links.check_url, field="device check link")),
    ]
    if links.consent_url:
        blocks += [
            Para(
                f"We do not yet have consent to record {session.client_first_name}'s sessions. Please read "
                "how recording works below and give or refuse consent here:",
                strong=True,
            ),
            Button("Give or refuse consent", checked_url(links.consent_url, field="consent link")),
        ]
    return blocks


def invitation(
    org: Organisation,
    session: SessionInfo,
    to: Recipient,
    links: Links,
    *,
    key: str,
    now: datetime,
    retention: str,
    sequence: int = 0,
) -> EmailMessage:
    """The family's (or adult client's) invitation, with the privacy notice and an .ics REQUEST."""
    s = _checked_session(session)
    when = format_when(s.start, s.duration_minutes, to.time_zone)
    audio = s.kind is SessionKind.LIVE_AUDIO
    blocks: list[Block] = [
        Para(f"Dear {header_text(to.name, field='recipient name')},"),
        Para(f"{s.client_first_name} has a {s.kind.label} with {s.practitioner_name} on {when}."),
        *_links(s, links),
        Para(
            "You can join up to a few minutes before the start. The calendar file attached adds the "
            "session to your calendar."
        ),
        *family_duties(client_first_name=s.client_first_name, audio_only=audio),
        *privacy_notice(organisation=org.name, audio_only=audio, retention=retention),
        *concerns(organisation=org.name, contact=org.contact),
        Para(org.name),
    ]
    short = format_short(s.start, to.time_zone)
    subject = f"{s.client_first_name}'s {s.kind.label} with {s.practitioner_name}, {short}"
    ics = build_ics(
        _event(org, s, to, join_url=links.join_url, sequence=sequence, now=now),
        method=Method.REQUEST,
        domain=org.mail_domain,
    )
    return _assemble(org, to, key=key, subject=subject, blocks=blocks, now=now, ics=(ics, Method.REQUEST))


def reminder_day_before(
    org: Organisation, session: SessionInfo, to: Recipient, links: Links, *, key: str, now: datetime
) -> EmailMessage:
    """Sent 24 hours before: the time again, the links, and consent if it is still missing."""
    s = _checked_session(session)
    when = format_when(s.start, s.duration_minutes, to.time_zone)
    blocks: list[Block] = [
        Para(f"Dear {header_text(to.name, field='recipient name')},"),
        Para(
            f"A reminder: {s.client_first_name}'s {s.kind.label} with {s.practitioner_name} "
            f"is tomorrow, {when}."
        ),
        *_links(s, links),
        Para(
            "If you have not run the device check yet, please do it today so there is time to fix "
            "any problem."
        ),
        *concerns(organisation=org.name, contact=org.contact),
        Para(org.name),
    ]
    subject = f"Tomorrow: {s.client_first_name}'s {s.kind.label}, {format_short(s.start, to.time_zone)}"
    return _assemble(org, to, key=key, subject=subject, blocks=blocks, now=now)


def reminder_hour_before(
    org: Organisation,
    session: SessionInfo,
    to: Recipient,
    links: Links,
    *,
    key: str,
    now: datetime,
    device_checked: bool,
) -> EmailMessage:
    """Sent 1 hour before; asks loudly for the device check when it has not been done."""
    s = _checked_session(session)
    when = format_when(s.start, s.duration_minutes, to.time_zone)
    blocks: list[Block] = [Para(f"Dear {header_text(to.name, field='recipient name')},")]
    if not device_checked:
        blocks += [
            Para(
                "You have not run the device check yet. Please run it now: it takes about two minutes "
                "and makes sure the camera, microphone and connection work before the session starts.",
                strong=True,
            ),
            Button("Check your device now", checked_url(links.check_url, field="device check link")),
        ]
    blocks += [
        Para(
            f"{s.client_first_name}'s {s.kind.label} with {s.practitioner_name} starts in one hour: {when}."
        ),
        Button("Join the session", checked_url(links.join_url, field="join link")),
    ]
    if links.consent_url:
        blocks += [
            Para("We still do not have a consent decision for recording.", strong=True),
            Button("Give or refuse consent", checked_url(links.consent_url, field="consent link")),
        ]
    blocks += [Para(org.name)]
    subject = f"In one hour: {s.client_first_name}'s {s.kind.label}"
    if not device_checked:
        subject += " - please run the device check"
    return _assemble(org, to, key=key, subject=subject, blocks=blocks, now=now)


def change_notice(
    org: Organisation,
    session: SessionInfo,
    to: Recipient,
    links: Links,
    *,
    key: str,
    now: datetime,
    sequence: int,
    retention: str,
    previous_start: datetime | None = None,
) -> EmailMessage:
    """The booking changed: new details, fresh links (the old ones no longer work), .ics update."""
    s = _checked_session(session)
    if sequence < 1:
        raise InvalidInput("A change must carry a calendar SEQUENCE of at least 1.", field="sequence")
    when = format_when(s.start, s.duration_minutes, to.time_zone)
    blocks: list[Block] = [Para(f"Dear {header_text(to.name, field='recipient name')},")]
    if previous_start is not None:
        old = format_when(previous_start, s.duration_minutes, to.time_zone)
        blocks.append(
            Para(
                f"{s.client_first_name}'s {s.kind.label} with {s.practitioner_name} has moved. It was {old}."
            )
        )
        blocks.append(Para(f"It is now {when}.", strong=True))
    else:
        blocks.append(
            Para(
                f"The details of {s.client_first_name}'s {s.kind.label} have changed. "
                f"It is with {s.practitioner_name} on {when}."
            )
        )
    blocks += [
        Para("The links in earlier emails no longer work. Please use these new links:", strong=True),
        *_links(s, links),
        Para("The calendar file attached updates the entry already in your calendar."),
        *privacy_notice(
            organisation=org.name, audio_only=s.kind is SessionKind.LIVE_AUDIO, retention=retention
        ),
        *concerns(organisation=org.name, contact=org.contact),
        Para(org.name),
    ]
    subject = f"Changed: {s.client_first_name}'s {s.kind.label}, now {format_short(s.start, to.time_zone)}"
    ics = build_ics(
        _event(org, s, to, join_url=links.join_url, sequence=sequence, now=now),
        method=Method.REQUEST,
        domain=org.mail_domain,
    )
    return _assemble(org, to, key=key, subject=subject, blocks=blocks, now=now, ics=(ics, Method.REQUEST))


def cancellation(
    org: Organisation,
    session: SessionInfo,
    to: Recipient,
    *,
    key: str,
    now: datetime,
    sequence: int,
    reason: str | None = None,
) -> EmailMessage:
    """The session is cancelled; the .ics CANCEL removes it from the calendar."""
    s = _checked_session(session)
    if sequence < 1:
        raise InvalidInput("A cancellation must carry a calendar SEQUENCE of at least 1.", field="sequence")
    when = format_when(s.start, s.duration_minutes, to.time_zone)
    blocks: list[Block] = [
        Para(f"Dear {header_text(to.name, field='recipient name')},"),
        Para(
            f"{s.client_first_name}'s {s.kind.label} with {s.practitioner_name} on {when} is cancelled.",
            strong=True,
        ),
    ]
    if reason:
        blocks.append(Para(f"Reason: {header_text(reason, field='reason', limit=1000)}"))
    blocks += [
        Para(
            "The links for this session no longer work. The calendar file attached removes the entry "
            "from your calendar."
        ),
        *concerns(organisation=org.name, contact=org.contact),
        Para(org.name),
    ]
    subject = f"Cancelled: {s.client_first_name}'s {s.kind.label}, {format_short(s.start, to.time_zone)}"
    ics = build_ics(
        _event(org, s, to, join_url=None, sequence=sequence, now=now),
        method=Method.CANCEL,
        domain=org.mail_domain,
    )
    return _assemble(org, to, key=key, subject=subject, blocks=blocks, now=now, ics=(ics, Method.CANCEL))


def practitioner_invitation(
    org: Organisation,
    session: SessionInfo,
    to: Recipient,
    join_url: str,
    *,
    key: str,
    now: datetime,
    sequence: int = 0,
) -> EmailMessage:
    """The practitioner's own invitation and join link (also used for their change notices)."""
    s = _checked_session(session)
    when = format_when(s.start, s.duration_minutes, to.time_zone)
    blocks: list[Block] = [
        Para(f"Dear {header_text(to.name, field='recipient name')},"),
        Para(f"You have a {s.kind.label} with {s.client_first_name} on {when}."),
        Button("Join the session", checked_url(join_url, field="join link")),
        Para(
            "The lobby shows the family's device check and consent status before you connect. Recording "
            "can only start while everyone who can be seen or heard has given consent."
        ),
        Para(org.name),
    ]
    prefix = "Updated: " if sequence else ""
    short = format_short(s.start, to.time_zone)
    subject = f"{prefix}{s.kind.label.capitalize()} with {s.client_first_name}, {short}"
    ics = build_ics(
        _event(org, s, to, join_url=join_url, sequence=sequence, now=now),
        method=Method.REQUEST,
        domain=org.mail_domain,
    )
    return _assemble(org, to, key=key, subject=subject, blocks=blocks, now=now, ics=(ics, Method.REQUEST))


def staff_alert(
    org: Organisation,
    to: Recipient,
    *,
    key: str,
    now: datetime,
    subject: str,
    lines: Sequence[str],
    link: str | None = None,
) -> EmailMessage:
    """A generic alert to staff (overdue home visit, concern not discussed within 24 hours...)."""
    if not lines or len(lines) > MAX_LINES:
        raise InvalidInput(f"An alert needs 1 to {MAX_LINES} lines of text.", field="lines")
    blocks: list[Block] = [Para(f"Dear {header_text(to.name, field='recipient name')},")]
    blocks += [Para(header_text(line, field="alert line", limit=2000)) for line in lines]
    if link:
        blocks.append(Button("Open in Duet", checked_url(link, field="alert link")))
    blocks.append(Para(f"This is an automatic alert from {org.name}."))
    heading = f"[{org.name}] {subject_text(subject)}"
    if len(heading) > 250:
        heading = subject_text(subject)
    return _assemble(org, to, key=key, subject=heading, blocks=blocks, now=now)


__all__ = [
    "Links",
    "Organisation",
    "Recipient",
    "SessionInfo",
    "SessionKind",
    "cancellation",
    "change_notice",
    "invitation",
    "practitioner_invitation",
    "reminder_day_before",
    "reminder_hour_before",
    "staff_alert",
]
