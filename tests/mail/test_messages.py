"""The emails a family, a practitioner or staff receive, read back the way a mail client would."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from icalendar import Calendar

from server.errors import InvalidInput
from server.mail.messages import (
    Links,
    Organisation,
    Recipient,
    SessionInfo,
    SessionKind,
    cancellation,
    change_notice,
    invitation,
    practitioner_invitation,
    reminder_day_before,
    reminder_hour_before,
    staff_alert,
)
from server.mail.transports import transport_from_url
from tests.support.smtp import SmtpTestServer

TUITION_KEPT = "until 28 days after the session, then erased automatically"
ORG = Organisation(
    "Cambridgeshire Music", "Duet <no-reply@duet.example.org>", contact="the office on 01223 000000"
)
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
SUMMER = SessionInfo(
    42, SessionKind.LIVE_VIDEO, datetime(2026, 6, 2, 15, 0, tzinfo=UTC), 45, "Ann Tutor", "Sam"
)
WINTER = replace(SUMMER, start=datetime(2026, 1, 13, 16, 0, tzinfo=UTC))
JO = Recipient("Jo Parent", "jo@example.org")
LINKS = Links(
    "https://duet.example.org/j/JOIN-jo",
    "https://duet.example.org/check/CHECK-jo",
    "https://duet.example.org/consent/CONSENT-jo",
)
KEY = "booking-42.invite.guardian-7.v0"


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    # Whitespace collapsed: the plain text is wrapped at 72 columns for mail readers.
    return " ".join(str(text.get_content()).split()), " ".join(str(html.get_content()).split())


def ics_of(msg: EmailMessage) -> tuple[Calendar, EmailMessage]:
    [att] = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert isinstance(att, EmailMessage)
    payload = att.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return Calendar.from_ical(payload), att


def vevent(cal: Calendar) -> dict[str, object]:
    [event] = cal.walk("VEVENT")
    return event  # type: ignore[no-any-return]


async def test_invitation_arrives_over_smtp_with_text_html_links_notice_and_ics(
    smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    msg = invitation(ORG, SUMMER, JO, LINKS, key=KEY, now=NOW, retention=TUITION_KEPT)
    await transport_from_url(smtp_server.url, tmp_path).send(msg)

    [got] = smtp_server.received_by("jo@example.org")
    received = got.message
    assert received["Message-ID"] == "<booking-42.invite.guardian-7.v0@duet.example.org>"
    assert received["To"] == "Jo Parent <jo@example.org>"
    assert received["Subject"] == "Sam's live video session with Ann Tutor, Tue 2 Jun, 16:00"
    assert received["Auto-Submitted"] == "auto-generated"
    text, html = parts(received)
    for body in (text, html):
        assert "Dear Jo Parent," in body
        assert LINKS.join_url in body and LINKS.check_url in body and LINKS.consent_url in body  # type: ignore[operator]
        assert "Tuesday 2 June 2026, 16:00 to 16:45 BST (UK time)" in body
        # the privacy notice: software, what is recorded, where, who, how long
        assert "in your web browser using Duet" in body and "our own media server" in body
        assert "video, audio and chat" in body and "only" in body and "consent" in body
        assert "encrypted" in body
        assert "only safeguarding staff" in body and "Every viewing is logged" in body
        assert "How long it is kept: until 28 days after the session, then erased automatically" in body
        assert "Childline" in body
    assert f'href="{LINKS.join_url}"' in html

    cal, att = ics_of(received)
    assert att.get_param("method") == "REQUEST"
    assert str(cal["METHOD"]) == "REQUEST"
    event = vevent(cal)
    assert str(event["UID"]) == "booking-42@duet.example.org"
    assert event["DTSTART"].dt == datetime(2026, 6, 2, 15, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    assert event["DTEND"].dt == datetime(2026, 6, 2, 15, 45, tzinfo=UTC)  # type: ignore[attr-defined]
    assert int(event["SEQUENCE"]) == 0  # type: ignore[call-overload]
    assert LINKS.join_url in str(event["DESCRIPTION"])
    assert str(event["ORGANIZER"]) == "mailto:no-reply@duet.example.org"


def test_consent_link_only_while_consent_is_missing() -> None:
    msg = invitation(ORG, SUMMER, JO, replace(LINKS, consent_url=None), key=KEY, now=NOW, retention=TUITION_KEPT)
    text, html = parts(msg)
    assert "consent/" not in text and "consent/" not in html
    assert "We do not yet have consent" not in text
    assert "withdraw consent at any time" in text


def test_time_is_shown_in_the_recipients_zone_gmt_bst_and_abroad() -> None:
    winter, _ = parts(invitation(ORG, WINTER, JO, LINKS, key=KEY, now=NOW, retention=TUITION_KEPT))
    assert "Tuesday 13 January 2026, 16:00 to 16:45 GMT (UK time)" in winter
    summer, _ = parts(invitation(ORG, SUMMER, JO, LINKS, key=KEY, now=NOW, retention=TUITION_KEPT))
    assert "16:00 to 16:45 BST" in summer  # 15:00 UTC is 16:00 in British Summer Time
    abroad = replace(JO, time_zone="America/New_York")
    ny, _ = parts(invitation(ORG, SUMMER, abroad, LINKS, key=KEY, now=NOW, retention=TUITION_KEPT))
    assert "Tuesday 2 June 2026, 11:00 to 11:45 EDT (America/New York time)" in ny
    late = replace(JO, time_zone="Asia/Tokyo")  # 15:00 UTC is past midnight in Tokyo
    tokyo, _ = parts(invitation(ORG, SUMMER, late, LINKS, key=KEY, now=NOW, retention=TUITION_KEPT))
    assert "Wednesday 3 June 2026, 00:00 to 00:45 JST" in tokyo


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not a known time zone"):
        invitation(
            ORG, SUMMER, replace(JO, time_zone="Mars/Olympus"), LINKS, key=KEY, now=NOW, retention=TUITION_KEPT
        )


def test_audio_session_does_not_talk_about_video_or_cameras() -> None:
    audio = replace(SUMMER, kind=SessionKind.LIVE_AUDIO)
    kept = "until 1 year after the session, then erased automatically"
    text, _ = parts(invitation(ORG, audio, JO, LINKS, key=KEY, now=NOW, retention=kept))
    assert "live audio session" in text
    assert "video" not in text and "camera" not in text
    assert "the audio and chat of the session" in text
    assert "until 1 year after the session" in text


def test_change_notice_has_fresh_links_old_time_and_next_sequence() -> None:
    moved = replace(SUMMER, start=datetime(2026, 6, 3, 15, 0, tzinfo=UTC))
    fresh = Links("https://duet.example.org/j/NEW", "https://duet.example.org/check/NEW")
    msg = change_notice(
        ORG,
        moved,
        JO,
        fresh,
        key="booking-42.change.guardian-7.v1",
        now=NOW,
        sequence=1,
        retention=TUITION_KEPT,
        previous_start=SUMMER.start,
    )
    text, html = parts(msg)
    assert "It was Tuesday 2 June 2026, 16:00" in text
    assert "It is now Wednesday 3 June 2026, 16:00 to 16:45 BST" in text
    assert "links in earlier emails no longer work" in text
    assert "https://duet.example.org/j/NEW" in html and LINKS.join_url not in html
    cal, att = ics_of(msg)
    event = vevent(cal)
    assert att.get_param("method") == "REQUEST"
    assert str(event["UID"]) == "booking-42@duet.example.org"
    assert int(event["SEQUENCE"]) == 1  # type: ignore[call-overload]
    assert event["DTSTART"].dt == moved.start  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput, match="SEQUENCE"):
        change_notice(ORG, moved, JO, fresh, key=KEY, now=NOW, sequence=0, retention=TUITION_KEPT)


def test_cancellation_cancels_the_same_calendar_event() -> None:
    msg = cancellation(
        ORG, SUMMER, JO, key="booking-42.cancel.guardian-7.v2", now=NOW, sequence=2, reason="Ann is unwell"
    )
    text, html = parts(msg)
    assert "is cancelled" in text and "Reason: Ann is unwell" in html
    assert msg["Subject"].startswith("Cancelled: ")
    cal, att = ics_of(msg)
    assert att.get_param("method") == "CANCEL"
    assert att.get_content_type() == "text/calendar"
    assert str(cal["METHOD"]) == "CANCEL"
    event = vevent(cal)
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == "booking-42@duet.example.org"
    assert int(event["SEQUENCE"]) == 2  # type: ignore[call-overload]


def test_reminders() -> None:
    day, _ = parts(reminder_day_before(ORG, SUMMER, JO, LINKS, key="r24", now=NOW))
    assert "is tomorrow, Tuesday 2 June 2026, 16:00" in day and LINKS.join_url in day

    nag = reminder_hour_before(ORG, SUMMER, JO, LINKS, key="r1", now=NOW, device_checked=False)
    text, html = parts(nag)
    assert "device check" in nag["Subject"]
    assert text.index("You have not run the device check yet") < text.index(LINKS.join_url)
    assert "<strong>You have not run the device check yet" in html

    calm = reminder_hour_before(
        ORG, SUMMER, JO, replace(LINKS, consent_url=None), key="r1", now=NOW, device_checked=True
    )
    text, _ = parts(calm)
    assert "device check" not in calm["Subject"] and "have not run" not in text
    assert "starts in one hour" in text and "consent" not in text


def test_practitioner_gets_own_link_and_same_calendar_uid() -> None:
    ann = Recipient("Ann Tutor", "ann@example.org")
    msg = practitioner_invitation(ORG, SUMMER, ann, "https://duet.example.org/j/ANN", key="p", now=NOW)
    text, _ = parts(msg)
    assert "You have a live video session with Sam" in text
    assert "https://duet.example.org/j/ANN" in text and LINKS.join_url not in text
    cal, _ = ics_of(msg)
    assert str(vevent(cal)["UID"]) == "booking-42@duet.example.org"


def test_staff_alert_escapes_html_and_prefixes_subject() -> None:
    lead = Recipient("Lee Lead", "lead@example.org")
    msg = staff_alert(
        ORG,
        lead,
        key="alert-visit-9",
        now=NOW,
        subject="Home visit overdue",
        lines=["Ann has not checked out of visit 9.", "<script>alert(1)</script>"],
        link="https://duet.example.org/visits/9",
    )
    text, html = parts(msg)
    assert msg["Subject"] == "[Cambridgeshire Music] Home visit overdue"
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<script>alert(1)</script>" in text
    assert "https://duet.example.org/visits/9" in html
    with pytest.raises(InvalidInput):
        staff_alert(ORG, lead, key="a", now=NOW, subject="x", lines=[])


def test_message_id_is_deterministic_for_the_same_key() -> None:
    a = invitation(ORG, SUMMER, JO, LINKS, key=KEY, now=NOW, retention=TUITION_KEPT)
    b = invitation(ORG, SUMMER, JO, LINKS, key=KEY, now=NOW, retention=TUITION_KEPT)
    assert a["Message-ID"] == b["Message-ID"] == "<booking-42.invite.guardian-7.v0@duet.example.org>"
    with pytest.raises(InvalidInput, match="message key"):
        invitation(ORG, SUMMER, JO, LINKS, key="bad key>", now=NOW, retention=TUITION_KEPT)


@pytest.mark.parametrize(
    ("session", "to"),
    [
        (SUMMER, Recipient("Bob\r\nBcc: x@evil.example", "bob@example.org")),
        (SUMMER, Recipient("Bob", "bob@example.org\r\nBcc: x@evil.example")),
        (SUMMER, Recipient("Bob\nBcc: x@evil.example", "bob@example.org")),
        (replace(SUMMER, practitioner_name="Ann\r\nBcc: x@evil.example"), JO),
        (replace(SUMMER, client_first_name="Sam\rX-Evil: 1"), JO),
    ],
)
def test_header_injection_is_refused(session: SessionInfo, to: Recipient) -> None:
    with pytest.raises(InvalidInput, match="line break"):
        invitation(ORG, session, to, LINKS, key=KEY, now=NOW, retention=TUITION_KEPT)


def test_subject_injection_in_alert_is_refused() -> None:
    with pytest.raises(InvalidInput, match="line break"):
        staff_alert(ORG, JO, key="a", now=NOW, subject="Hi\r\nBcc: x@evil.example", lines=["x"])


def test_invalid_recipient_address_is_refused_with_a_clear_message() -> None:
    with pytest.raises(InvalidInput) as caught:
        invitation(
            ORG, SUMMER, replace(JO, email="jo.example.org"), LINKS, key=KEY, now=NOW, retention=TUITION_KEPT
        )
    assert "'jo.example.org' is not a valid email address" in caught.value.detail
    assert "@-sign" in caught.value.detail
    assert caught.value.field == "recipient"


def test_oversize_fields_are_refused() -> None:
    with pytest.raises(InvalidInput, match="longer than 200"):
        invitation(ORG, SUMMER, replace(JO, name="J" * 201), LINKS, key=KEY, now=NOW, retention=TUITION_KEPT)
    with pytest.raises(InvalidInput, match="longer than 250"):
        staff_alert(ORG, JO, key="a", now=NOW, subject="S" * 251, lines=["x"])


def test_links_must_be_http_urls() -> None:
    with pytest.raises(InvalidInput, match="join link"):
        invitation(
            ORG,
            SUMMER,
            JO,
            replace(LINKS, join_url="javascript:alert(1)"),
            key=KEY,
            now=NOW,
            retention=TUITION_KEPT,
        )


def test_naive_start_time_is_refused() -> None:
    naive = replace(SUMMER, start=datetime(2026, 6, 2, 15, 0))  # noqa: DTZ001 - the point of the test
    with pytest.raises(InvalidInput, match="timezone-aware"):
        invitation(ORG, naive, JO, LINKS, key=KEY, now=NOW, retention=TUITION_KEPT)
