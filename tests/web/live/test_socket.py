"""The session WebSocket with real aiortc peers: media both ways, chat, host controls, bad input."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import ClientSession, CookieJar, WSServerHandshakeError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.bookings.models import Booking
from server.chat.models import ChatMessage
from server.clock import FakeClock
from server.services import Services
from tests.media.peers import Peer, until
from tests.support.org import PASSWORD, Org
from tests.web.live.conftest import OpenCaller, tutor_and_guardian


async def test_tutor_and_guardian_see_and_hear_each_other(open_caller: OpenCaller, org: Org) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    welcome = await tutor.wait_for("welcome")
    assert welcome["role"] == "host" and welcome["audio_only"] is False
    assert (await guardian.wait_for("welcome"))["role"] == "participant"
    await tutor.join_media(Peer("tutor", tag=1, tone=440))
    await guardian.join_media(Peer("guardian", tag=2, tone=880))
    assert tutor.peer is not None and guardian.peer is not None
    await until(lambda: len(tutor.peer.video_from(2)) > 10 and len(guardian.peer.video_from(1)) > 10, 15)
    counters = [c for _, c in guardian.peer.video_from(1)]
    assert counters == sorted(counters)  # in order
    await until(lambda: any(r.kind == "audio" and r.audio_frames > 20 for r in tutor.peer.received), 10)
    tone = next(r for r in guardian.peer.received if r.kind == "audio" and r.freqs)
    assert abs(tone.freqs[-1] - 440) < 30  # the tutor's tone
    members = (await guardian.wait_for("members", lambda m: len(m["members"]) == 2))["members"]
    assert {m["role"] for m in members} == {"host", "participant"}
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as admin:  # the operations view of the relay
        r = await admin.post(f"{tutor.base}/api/v1/auth/login",
                             json={"email": org.email("admin"), "password": PASSWORD})
        assert r.status == 200
        stats = await (await admin.get(f"{tutor.base}/api/v1/media/stats")).json()
    assert stats["decoders_created"] == 0 and stats["encoders_created"] == 0  # forwarded, never transcoded
    assert stats["frames_forwarded"] > 20
    assert {m["id"] for m in stats["sessions"][str(org.booking_id)]} == {f"staff:{org.tutor_id}",
                                                                         f"guardian:{org.guardian_id}"}


async def test_chat_is_stored_with_the_booking_and_broadcast(
    open_caller: OpenCaller, org: Org, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.wait_for("welcome")
    await guardian.send({"type": "chat", "text": "Kit has practised the scales"})
    said = await tutor.wait_for("chat")
    assert said["name"] == "Gail Guardian" and said["text"] == "Kit has practised the scales"
    async with sessionmaker() as s:
        rows = (await s.execute(select(ChatMessage))).scalars().all()
    assert [(r.booking_id, r.sender) for r in rows] == [(org.booking_id, f"guardian:{org.guardian_id}")]
    late = await open_caller(f"staff:{org.tutor_id}")
    await late.connect()
    assert (await late.wait_for("welcome"))["chat"][0]["text"] == "Kit has practised the scales"


async def test_only_the_host_can_mute_remove_or_end(
    open_caller: OpenCaller, org: Org, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.wait_for("welcome")
    await guardian.send({"type": "end"})
    assert (await guardian.wait_for("error"))["code"] == "forbidden"
    await guardian.join_media(Peer("guardian", tag=2, tone=880))
    await tutor.wait_for("members", lambda m: any(x["publishing"]["audio"] for x in m["members"]))
    await tutor.send({"type": "mute", "participant": f"guardian:{org.guardian_id}", "kind": "audio"})
    assert (await guardian.wait_for("muted_by_host"))["kind"] == "audio"
    await tutor.wait_for("members", lambda m: any(x["muted"]["audio"] for x in m["members"]))
    await tutor.send({"type": "remove", "participant": f"guardian:{org.guardian_id}"})
    assert "removed you" in (await guardian.wait_for("removed"))["reason"]
    await until(lambda: guardian.closed_code is not None)
    await tutor.send({"type": "end"})
    await tutor.wait_for("ended")
    async with sessionmaker() as s:
        actions = [e.action for e in (await s.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars()]
    assert {"session.joined", "session.muted", "session.removed", "session.ended"} <= set(actions)


async def test_an_observer_receives_but_cannot_publish_and_everyone_sees_them(
    open_caller: OpenCaller, org: Org, live_server: str, clock: FakeClock
) -> None:
    import pyotp

    tutor = await open_caller(f"staff:{org.tutor_id}")
    await tutor.connect()
    await tutor.join_media(Peer("tutor", tag=1, tone=440))
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        r = await http.post(f"{live_server}/api/v1/auth/login",
                            json={"email": org.email("safeguarding"), "password": "correct horse battery staple"})
        csrf = (await r.json())["csrf_token"]
        code = pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp()))
        await http.post(f"{live_server}/api/v1/auth/second-factor", json={"code": code},
                        headers={"X-CSRF-Token": csrf})
        from tests.web.live.conftest import Caller

        lead = Caller(http, live_server, org.booking_id)
        await lead.connect()
        assert (await lead.wait_for("welcome"))["role"] == "observer"
        seen = await tutor.wait_for("members", lambda m: any(x["role"] == "observer" for x in m["members"]))
        assert any(x["name"] == "Safeguarding Person" for x in seen["members"])
        observer = Peer("lead", tag=3, tone=660)  # tries to publish anyway
        await lead.join_media(observer)
        await until(lambda: len(observer.video_from(1)) > 5, 15)
        await asyncio.sleep(1)
        assert tutor.peer is not None and tutor.peer.video_from(3) == []
        await lead.close()


async def test_bad_messages_get_errors_and_the_session_carries_on(open_caller: OpenCaller, org: Org) -> None:
    guardian = await open_caller(f"guardian:{org.guardian_id}")
    await guardian.connect()
    await guardian.wait_for("welcome")
    assert guardian.ws is not None
    await guardian.ws.send_str("{not json")
    await guardian.send({"type": "teleport"})
    await guardian.send({"type": "chat", "text": ""})
    await guardian.send({"type": "offer", "sdp": "v=0 this is not sdp at all"})
    await until(lambda: len(guardian.of_type("error")) >= 4)
    codes = [e["code"] for e in guardian.of_type("error")]
    assert codes[:3] == ["bad_message", "unknown_type", "bad_message"]
    assert codes[3] in ("bad_sdp", "invalid_input", "bad_request") or "sdp" in codes[3]
    await guardian.send({"type": "ping"})
    await guardian.wait_for("pong")


async def test_a_flood_is_rate_limited_then_cut_off(open_caller: OpenCaller, org: Org) -> None:
    flooder = await open_caller(f"guardian:{org.guardian_id}")
    tutor = await open_caller(f"staff:{org.tutor_id}")
    await tutor.connect()
    await flooder.connect()
    await flooder.wait_for("welcome")
    for _ in range(300):
        await flooder.send({"type": "ping"})
    await until(lambda: flooder.closed_code is not None, 10)
    assert flooder.closed_code == 1008 and flooder.of_type("error")[0]["code"] == "rate_limited"
    await tutor.send({"type": "ping"})
    await tutor.wait_for("pong")  # the others carry on


async def test_a_client_that_vanishes_mid_negotiation_leaves_the_room_working(
    open_caller: OpenCaller, org: Org
) -> None:
    tutor = await open_caller(f"staff:{org.tutor_id}")
    ghost = await open_caller(f"guardian:{org.guardian_id}")
    await tutor.connect()
    await ghost.connect()
    await ghost.wait_for("welcome")
    vanishing = Peer("ghost", tag=2)
    offer = await vanishing.offer()
    await vanishing.close()  # its browser is gone: nobody will ever answer the relay
    await ghost.send({"type": "offer", "sdp": offer})
    assert ghost.ws is not None
    await ghost.ws.close()
    await tutor.wait_for("members", lambda m: len(m["members"]) == 1)
    await tutor.send({"type": "chat", "text": "still here"})
    assert (await tutor.wait_for("chat"))["text"] == "still here"


async def test_another_site_another_booking_or_outside_the_window_is_refused(
    open_caller: OpenCaller, org: Org, clock: FakeClock, live_server: str, services: object,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from datetime import timedelta

    from server.bookings.models import BookingKind
    from server.bookings.services import NewBooking
    from tests.support.org import SETUP

    guardian = await open_caller(f"guardian:{org.guardian_id}")
    try:
        await guardian.connect(origin="https://evil.example.com")
        raise AssertionError("a cross-site WebSocket was accepted")
    except WSServerHandshakeError as exc:
        assert exc.status == 403
    try:  # this guardian's cookie is for org.booking_id only
        await guardian.http.ws_connect(f"{live_server}/s/{org.booking_id + 1000}/ws", headers={"Origin": live_server})
        raise AssertionError("a link for one booking opened another")
    except WSServerHandshakeError as exc:
        assert exc.status in (401, 404)
    async with sessionmaker() as s:
        tomorrow = await services.bookings.create(s, SETUP, NewBooking(  # type: ignore[attr-defined]
            kind=BookingKind.LIVE_AUDIO, practitioner_id=org.tutor_id, client_id=org.child_id,
            starts_at=clock.now() + timedelta(days=1), duration_minutes=30, guardian_ids=(org.guardian_id,)))
        await s.commit()
    early = await open_caller(f"guardian:{org.guardian_id}", tomorrow.id)
    await early.connect()
    error = await early.wait_for("error")
    assert error["code"] == "window" and "not opened yet" in error["detail"]
    await until(lambda: early.closed_code == 4403)
    clock.advance(timedelta(hours=4))  # today's session ended hours ago: its link has expired too
    try:
        await guardian.connect()
        raise AssertionError("an expired link still opened the session")
    except WSServerHandshakeError as exc:
        assert exc.status in (401, 410)


async def test_a_participant_whose_network_broke_rejoins_and_is_seen_again(open_caller: OpenCaller, org: Org) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await tutor.join_media(Peer("tutor", tag=1, tone=440))
    await guardian.join_media(Peer("guardian", tag=2, tone=880))
    assert tutor.peer is not None
    await until(lambda: len(tutor.peer.video_from(2)) > 5, 15)
    fresh = Peer("guardian-again", tag=2, tone=880)
    await guardian.rejoin_media(fresh)  # what the page does on ICE failed/disconnected
    before = len(tutor.peer.video_from(2))
    await until(lambda: len(tutor.peer.video_from(2)) > before + 10, 15)  # the tutor sees them return
    await until(lambda: len(fresh.video_from(1)) > 5, 15)  # and they see the tutor again
    latest = tutor.of_type("members")[-1]["members"]
    assert [m["id"] for m in latest].count(f"guardian:{org.guardian_id}") == 1  # present once, not twice


async def test_music_mode_is_the_practitioners_switch_and_asks_for_stereo_opus(
    open_caller: OpenCaller, org: Org
) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.join_media(Peer("guardian", tag=2, tone=880))
    assert "stereo=1" not in guardian.of_type("answer")[0]["sdp"]
    await guardian.send({"type": "music_mode", "on": True})
    assert (await guardian.wait_for("error"))["code"] == "forbidden"
    await tutor.send({"type": "music_mode", "on": True})
    assert (await guardian.wait_for("music_mode"))["on"] is True
    await guardian.send({"type": "rejoin"})  # the page re-opens its microphone without voice processing
    await guardian.wait_for("rejoin_ready")
    assert guardian.peer is not None
    await guardian.peer.close()
    guardian.peer = Peer("guardian-music", tag=2, tone=880)
    await guardian.send({"type": "offer", "sdp": await guardian.peer.offer()})
    await until(lambda: len(guardian.of_type("answer")) >= 2)
    answer = guardian.of_type("answer")[1]["sdp"]
    assert "stereo=1" in answer and "maxaveragebitrate=" in answer


async def test_the_session_ends_by_itself_once_the_booked_time_and_its_grace_are_over(
    open_caller: OpenCaller, org: Org, clock: FakeClock, services: Services,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.wait_for("welcome")
    async with sessionmaker() as s:
        booking = await s.get(Booking, org.booking_id)
    assert booking is not None
    over = booking.ends_at + timedelta(minutes=services.settings.late_grace_minutes)
    clock.set(over - timedelta(seconds=1))
    await asyncio.sleep(0.2)
    assert tutor.closed_code is None and guardian.closed_code is None  # a lesson running late may finish
    clock.advance(2)
    for caller in (tutor, guardian):
        assert (await caller.wait_for("ended"))["reason"] == "the booked time is over"


async def test_someone_removed_stays_out_until_the_practitioner_lets_them_back(
    open_caller: OpenCaller, org: Org, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.wait_for("welcome")
    gail = f"guardian:{org.guardian_id}"
    await tutor.send({"type": "remove", "participant": gail})
    await guardian.wait_for("removed")
    assert (await tutor.wait_for("removed_list"))["participants"] == [gail]
    again = await open_caller(gail)  # Gail opens her link again
    await again.connect()
    refused = await again.wait_for("error")
    assert refused["code"] == "removed" and "let you back in" in refused["detail"]
    await until(lambda: again.closed_code == 4403)
    await tutor.send({"type": "readmit", "participant": gail})
    await tutor.wait_for("removed_list", lambda m: m["participants"] == [])
    back = await open_caller(gail)
    await back.connect()
    assert (await back.wait_for("welcome"))["you"] == gail
    async with sessionmaker() as s:
        actions = [e.action for e in (await s.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars()]
    assert "session.readmitted" in actions


async def test_a_session_the_practitioner_ended_is_not_reopened_by_a_family_joining_again(
    open_caller: OpenCaller, org: Org
) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.wait_for("welcome")
    await tutor.send({"type": "end"})
    await guardian.wait_for("ended")
    again = await open_caller(f"guardian:{org.guardian_id}")
    await again.connect()
    assert (await again.wait_for("error"))["code"] == "ended"
    host = await open_caller(f"staff:{org.tutor_id}")  # only the practitioner may open it again
    await host.connect()
    assert (await host.wait_for("welcome"))["role"] == "host"
    later = await open_caller(f"guardian:{org.guardian_id}")
    await later.connect()
    assert (await later.wait_for("welcome"))["role"] == "participant"


async def test_the_practitioner_cannot_remove_the_safeguarding_observer(
    open_caller: OpenCaller, org: Org, live_server: str, clock: FakeClock
) -> None:
    import pyotp

    tutor = await open_caller(f"staff:{org.tutor_id}")
    await tutor.connect()
    await tutor.wait_for("welcome")
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        r = await http.post(f"{live_server}/api/v1/auth/login",
                            json={"email": org.email("safeguarding"), "password": "correct horse battery staple"})
        csrf = (await r.json())["csrf_token"]
        code = pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp()))
        await http.post(f"{live_server}/api/v1/auth/second-factor", json={"code": code},
                        headers={"X-CSRF-Token": csrf})
        from tests.web.live.conftest import Caller

        lead = Caller(http, live_server, org.booking_id)
        await lead.connect()
        await lead.wait_for("welcome")
        await tutor.send({"type": "remove", "participant": f"staff:{org.safeguarding_id}"})
        assert "observer cannot be removed" in (await tutor.wait_for("error"))["detail"]
        assert lead.of_type("removed") == []
        await lead.close()


async def test_the_message_limit_is_per_person_so_reconnecting_does_not_reset_it(
    open_caller: OpenCaller, org: Org
) -> None:
    flooder = await open_caller(f"guardian:{org.guardian_id}")
    await flooder.connect()
    await flooder.wait_for("welcome")
    for _ in range(300):
        await flooder.send({"type": "ping"})
    await until(lambda: flooder.closed_code is not None, 10)
    assert flooder.closed_code == 1008  # cut off after 100 refused messages
    again = await open_caller(f"guardian:{org.guardian_id}")
    await again.connect()
    await again.wait_for("welcome")
    for _ in range(120):  # a fresh allowance per socket would refuse at most 80 of these and stay open
        await again.send({"type": "ping"})
    await until(lambda: again.closed_code is not None, 10)
    assert again.closed_code == 1008
