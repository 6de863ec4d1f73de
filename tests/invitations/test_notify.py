"""Booking emails: written with the booking, delivered by the outbox Sender, links that open the lobby."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import icalendar
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.bookings.models import BookingKind
from server.bookings.services import NewBooking
from server.clock import FakeClock
from server.consent.services import Grant
from server.mail.models import OutboxMessage
from server.mail.outbox import Sender
from server.mail.transports import transport_from_url
from server.services import Services
from tests.support.org import SETUP, Org
from tests.support.smtp import SmtpTestServer

Login = Callable[[str], Awaitable[str]]
START = "2026-11-24T14:00:00+00:00"


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def _ics(msg: EmailMessage) -> icalendar.Calendar:
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return icalendar.Calendar.from_ical(payload)
    raise AssertionError("no calendar part")


async def _book(client: TestClient, org: Org, csrf: str, **extra: object) -> int:
    body = {"kind": "live_video", "practitioner_id": org.other_tutor_id, "client_id": org.child_id,
            "starts_at": START, "duration_minutes": 45, "guardian_ids": [org.guardian_id], **extra}
    r = await client.post("/api/v1/bookings", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status == 201, await r.text()
    return int((await r.json())["id"])


async def _send(sessionmaker: async_sessionmaker[AsyncSession], server: SmtpTestServer, clock: FakeClock,
                tmp: Path) -> None:
    sender = Sender(sessionmaker, transport_from_url(server.url, tmp), clock, batch_size=50)
    await sender.send_pending_once()


async def test_invitation_arrives_by_smtp_and_its_link_reaches_the_lobby(
        client: TestClient, org: Org, login: Login, clock: FakeClock, smtp_server: SmtpTestServer,
        sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    booking_id = await _book(client, org, await login("admin"))
    await _send(sessionmaker, smtp_server, clock, tmp_path)
    mine = [m for m in smtp_server.messages if f"booking-{booking_id}." in str(m.message["Message-ID"])]
    to_family = [m.message for m in mine if m.rcpt_tos == ("gail@family.example.org",)]
    to_tutor = [m.message for m in mine if m.rcpt_tos == (org.email("tutor2"),)]
    assert len(to_family) == 1 and len(to_tutor) == 1
    family = to_family[0]
    text = _text(family)
    assert "Tutor2 Person on Tuesday 24 November 2026, 14:00" in " ".join(text.split())
    # the period of the tuition policy (storage_policies/tuition_monitoring.toml), not a made-up one
    assert "How long it is kept: until 28 days after the session, then erased automatically" in " ".join(
        text.split())
    cal = _ics(family)
    event = next(iter(cal.walk("VEVENT")))
    assert str(cal["METHOD"]) == "REQUEST" and int(str(event["SEQUENCE"])) == 0
    assert event.decoded("DTSTART").isoformat() == START
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(minutes=45)
    tokens = re.findall(r"/l/([A-Za-z0-9_\-]+)", text)
    assert len(set(tokens)) >= 2  # join, device check, consent
    join = tokens[0]
    client.session.cookie_jar.clear()
    early = await client.get(f"/l/{join}", allow_redirects=False)
    assert early.status in (303, 200)
    clock.set(clock.now().replace(day=24, hour=13, minute=58))
    opened = await client.get(f"/l/{join}", allow_redirects=False)
    assert opened.status == 303 and opened.headers["Location"] == f"/s/{booking_id}"
    lobby = await client.get(f"/s/{booking_id}")
    assert lobby.status == 200 and "text/html" in lobby.headers["Content-Type"]


async def test_a_rolled_back_booking_leaves_no_email(
        org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    async with sessionmaker() as s:
        before = (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
        await services.bookings.create(s, SETUP, NewBooking(
            kind=BookingKind.LIVE_AUDIO, practitioner_id=org.other_tutor_id, client_id=org.child_id,
            starts_at=clock.now() + timedelta(days=2), duration_minutes=30, guardian_ids=(org.guardian_id,)))
        during = (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
        await s.rollback()
    async with sessionmaker() as s:
        after = (await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one()
    assert during == before + 2 and after == before


async def test_cancellation_removes_the_event_from_calendars(
        client: TestClient, org: Org, login: Login, clock: FakeClock, smtp_server: SmtpTestServer,
        sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    csrf = await login("admin")
    booking_id = await _book(client, org, csrf)
    await _send(sessionmaker, smtp_server, clock, tmp_path)
    invite = next(m for m in smtp_server.messages if f"booking-{booking_id}." in str(m.message["Message-ID"]))
    invite_uid = str(next(iter(_ics(invite.message).walk("VEVENT")))["UID"])
    smtp_server.messages.clear()
    r = await client.post(f"/api/v1/bookings/{booking_id}/cancel", json={"reason": "tutor ill"},
                          headers={"X-CSRF-Token": csrf})
    assert r.status == 200
    await _send(sessionmaker, smtp_server, clock, tmp_path)
    assert len(smtp_server.messages) == 2
    for got in smtp_server.messages:
        cal = _ics(got.message)
        event = next(iter(cal.walk("VEVENT")))
        assert str(cal["METHOD"]) == "CANCEL" and int(str(event["SEQUENCE"])) == 1
        assert "tutor ill" in _text(got.message)
    uids = {str(next(iter(_ics(m.message).walk("VEVENT")))["UID"]) for m in smtp_server.messages}
    assert invite_uid in uids


async def test_reschedule_sends_fresh_links_and_the_same_event_with_sequence_one(
        client: TestClient, org: Org, login: Login, clock: FakeClock, smtp_server: SmtpTestServer,
        sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    csrf = await login("admin")
    booking_id = await _book(client, org, csrf)
    await _send(sessionmaker, smtp_server, clock, tmp_path)
    first = next(m.message for m in smtp_server.messages
                 if m.rcpt_tos == ("gail@family.example.org",) and f"booking-{booking_id}." in m.message["Message-ID"])
    old_links = re.findall(r"/l/([A-Za-z0-9_\-]+)", _text(first))
    old_join = old_links[0]
    uid = str(next(iter(_ics(first).walk("VEVENT")))["UID"])
    smtp_server.messages.clear()
    r = await client.post(f"/api/v1/bookings/{booking_id}/reschedule",
                          json={"starts_at": "2026-11-25T16:30:00+00:00"}, headers={"X-CSRF-Token": csrf})
    assert r.status == 200, await r.text()
    await _send(sessionmaker, smtp_server, clock, tmp_path)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["gail@family.example.org", org.email("tutor2")]
    change = next(m.message for m in smtp_server.messages if m.rcpt_tos == ("gail@family.example.org",))
    event = next(iter(_ics(change).walk("VEVENT")))
    assert str(event["UID"]) == uid and int(str(event["SEQUENCE"])) == 1
    assert event.decoded("DTSTART").isoformat() == "2026-11-25T16:30:00+00:00"
    new_join = re.findall(r"/l/([A-Za-z0-9_\-]+)", _text(change))[0]
    assert new_join != old_join
    client.session.cookie_jar.clear()
    for token in set(old_links):  # the old join, device-check and consent links all stop
        assert (await client.get(f"/l/{token}", allow_redirects=False)).status == 410


async def test_resend_revokes_every_old_link_and_mails_new_ones(
        client: TestClient, org: Org, login: Login, clock: FakeClock, smtp_server: SmtpTestServer,
        sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    csrf = await login("admin")
    await _send(sessionmaker, smtp_server, clock, tmp_path)
    old = next(m.message for m in smtp_server.messages if m.rcpt_tos == ("gail@family.example.org",))
    old_links = re.findall(r"/l/([A-Za-z0-9_\-]+)", _text(old))
    smtp_server.messages.clear()
    subject = f"guardian:{org.guardian_id}"
    r = await client.post(f"/api/v1/bookings/{org.booking_id}/resend", json={"subject": subject},
                          headers={"X-CSRF-Token": csrf})
    assert r.status == 200, await r.text()
    bad = await client.post(f"/api/v1/bookings/{org.booking_id}/resend", json={"subject": "guardian:999"},
                            headers={"X-CSRF-Token": csrf})
    assert bad.status == 404 and "not invited" in (await bad.json())["detail"]
    await _send(sessionmaker, smtp_server, clock, tmp_path)
    assert [m.rcpt_tos for m in smtp_server.messages] == [("gail@family.example.org",)]
    new_join = re.findall(r"/l/([A-Za-z0-9_\-]+)", _text(smtp_server.messages[0].message))[0]
    client.session.cookie_jar.clear()
    for token in set(old_links):  # the old join, device-check and consent links all stop
        assert (await client.get(f"/l/{token}", allow_redirects=False)).status == 410
    assert (await client.get(f"/l/{new_join}", allow_redirects=False)).status == 303


async def test_header_injection_in_a_name_cannot_add_headers(
        client: TestClient, org: Org, login: Login, clock: FakeClock, smtp_server: SmtpTestServer,
        sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    csrf = await login("admin")
    r = await client.post("/api/v1/guardians", headers={"X-CSRF-Token": csrf}, json={
        "name": "Eve\r\nBcc: victim@evil.example", "email": "eve@family.example.org"})
    assert r.status == 422
    r = await client.post("/api/v1/guardians", headers={"X-CSRF-Token": csrf}, json={
        "name": "Eve Guardian", "email": "eve@family.example.org\r\nBcc: victim@evil.example"})
    assert r.status == 422 and "email" in (await r.text())
    await _send(sessionmaker, smtp_server, clock, tmp_path)
    assert all("victim@evil.example" not in m.rcpt_tos for m in smtp_server.messages)
    assert all(b"victim@evil.example" not in m.raw for m in smtp_server.messages)


async def test_the_consent_link_is_sent_only_while_consent_is_missing(
        client: TestClient, org: Org, login: Login, clock: FakeClock, smtp_server: SmtpTestServer,
        services: Services, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    csrf = await login("admin")
    before = await _book(client, org, csrf)
    async with sessionmaker() as s:
        await services.consent.give(s, SETUP, f"guardian:{org.guardian_id}", f"client:{org.child_id}",
                                    Grant(record=True, safeguarding=True, feedback=False), clock.now().date())
        await s.commit()
    after = await _book(client, org, csrf, starts_at="2026-11-24T16:00:00+00:00")
    await _send(sessionmaker, smtp_server, clock, tmp_path)
    texts = {booking: " ".join(_text(m.message).split()) for m in smtp_server.messages
             if m.rcpt_tos == ("gail@family.example.org",)
             for booking in (before, after) if f"booking-{booking}." in m.message["Message-ID"]}
    assert "We do not yet have consent to record Kit's sessions" in texts[before]
    assert "consent" not in texts[after].split("How the session works")[0]  # no request, no consent link
