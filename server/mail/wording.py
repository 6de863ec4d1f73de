"""The reusable passages of the emails: session times, the privacy notice, the family's duties.

Plain English, addressed to the reader. The privacy notice is the information the
blended learning policy (policies/000, "Cambridgeshire Music managers will":
"Provide parents/carers/guardians and clients over 18 with information in advance
about the software to be used, how video, audio and chat data will be recorded and
stored, and how and by whom it can be accessed") requires before a first session.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.errors import InvalidInput
from server.mail.templates import Block, Bullets, Heading, Para


def zone(name: str) -> ZoneInfo:
    """The recipient's IANA time zone, refused with a clear message when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"'{name}' is not a known time zone; use a name like Europe/London.", field="time_zone"
        ) from None


def _clock(t: datetime) -> str:
    return t.strftime("%H:%M")


def format_when(start: datetime, duration_minutes: int, time_zone: str) -> str:
    """``Tuesday 6 January 2026, 16:00 to 16:45 GMT (UK time)`` in the reader's zone.

    The abbreviation (GMT or BST, EST...) comes from the zone rules for that date,
    so a session after the clocks change shows the right local time.
    """
    if start.tzinfo is None:
        raise InvalidInput("The session start must be timezone-aware.", field="start")
    tz = zone(time_zone)
    local = start.astimezone(tz)
    end = (start + timedelta(minutes=duration_minutes)).astimezone(tz)
    day = f"{local:%A} {local.day} {local:%B %Y}"
    label = "UK time" if time_zone == "Europe/London" else f"{time_zone.replace('_', ' ')} time"
    until = _clock(end) if end.date() == local.date() else f"{_clock(end)} on {end:%A} {end.day} {end:%B}"
    return f"{day}, {_clock(local)} to {until} {local.tzname()} ({label})"


def format_short(start: datetime, time_zone: str) -> str:
    """``Tue 6 Jan, 16:00`` for subject lines."""
    local = start.astimezone(zone(time_zone))
    return f"{local:%a} {local.day} {local:%b}, {_clock(local)}"


def privacy_notice(*, organisation: str, audio_only: bool, retention: str) -> list[Block]:
    """What software, what is recorded, where it is kept, who can see it, for how long."""
    media = "audio and chat" if audio_only else "video, audio and chat"
    return [
        Heading("How the session works and how it is recorded"),
        Bullets(
            (
                f"Software: the session runs in your web browser using Duet, {organisation}'s own session "
                "system, through our own media server. There is nothing to install and no account to create.",
                f"What is recorded: the {media} of the session, for monitoring and safeguarding, and only "
                "while everyone who can be seen or heard has given consent. Everyone in the session can see "
                "when recording is on, and it stops at once if consent is withdrawn.",
                "Where it is kept: recordings are encrypted while they are made and stay encrypted in "
                f"{organisation}'s storage.",
                "Who can see it: only safeguarding staff, who must sign in with a second security step and "
                "give a reason. Every viewing is logged.",
                f"How long it is kept: {retention} (from our retention policy), unless it is needed for a "
                "safeguarding investigation.",
                "You can withdraw consent at any time, ask for a copy of your data or ask for it to be "
                "erased.",
            )
        ),
    ]


def family_duties(*, client_first_name: str, audio_only: bool) -> list[Block]:
    """The parent/carer duties from policies/000 that apply to a live session."""
    items = [
        "Run the device check before the day, and have the device switched on, charged or plugged into a "
        "safe socket, and working in time for the start.",
        "Use an internet connection fast enough for a live session (the device check measures it).",
        "Be at home for the whole session and available to talk to the practitioner if asked.",
    ]
    if not audio_only:
        items += [
            f"Make sure no children or young people other than {client_first_name} come into view of the "
            "camera, and that everyone who can be seen is dressed as they would be in public.",
        ]
    items += [
        "Please do not record the screen or the sound of the session yourself.",
        "The join link is personal to you: please do not forward it.",
    ]
    return [Heading("Before the session"), Bullets(tuple(items))]


def concerns(*, organisation: str, contact: str | None) -> list[Block]:
    """How to raise a concern, including routes outside the service (policies/000, CEOP, Childline)."""
    who = f"contact {contact}" if contact else f"contact {organisation}"
    return [
        Para(
            f"If you or anyone taking part has a concern before, during or after a session, please {who}. "
            "Children and young people can also talk to Childline on 0800 1111 or report to CEOP at "
            "www.ceop.police.uk. In an emergency call 999."
        )
    ]
