"""Recording in a live session: refused without consent, on with it, paused at once on withdrawal."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.app import RECORDING
from server.clock import FakeClock
from server.config import Settings
from server.consent.services import Grant
from server.recording.models import Recording
from server.services import Services
from tests.media.peers import Peer, until
from tests.signalling.conftest import OpenCaller
from tests.support.org import SETUP, Org


async def _consent_to_recording(services: Services, sessionmaker: async_sessionmaker[AsyncSession], org: Org,
                                clock: FakeClock) -> None:
    """The tutor's recording agreement, and Gail's consent for herself and for Kit."""
    today = clock.now().date()
    async with sessionmaker() as s:
        await services.consent.set_staff_agreement(s, SETUP, org.tutor_id, today)
        for covers in (f"guardian:{org.guardian_id}", f"client:{org.child_id}"):
            await services.consent.give(s, SETUP, f"guardian:{org.guardian_id}", covers,
                                        Grant(record=True, safeguarding=True, feedback=False), today)
        await s.commit()


async def test_recording_follows_the_consent_of_everyone_seen_or_heard(
    open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock, settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession], app: object,
) -> None:
    tutor = await open_caller(f"staff:{org.tutor_id}")
    guardian = await open_caller(f"guardian:{org.guardian_id}")
    await tutor.connect()
    await guardian.connect()
    assert (await guardian.wait_for("recording"))["label"] == "Not recording"
    await tutor.join_media(Peer("tutor", tag=1, tone=440))
    await guardian.join_media(Peer("guardian", tag=2, tone=880))
    await tutor.wait_for("members", lambda m: len(m["members"]) == 2
                         and all(x["publishing"]["video"] for x in m["members"]))

    await guardian.send({"type": "record", "on": True})
    assert (await guardian.wait_for("error"))["code"] == "forbidden"  # only the practitioner records
    await tutor.send({"type": "record", "on": True})
    refused = await tutor.wait_for("error", lambda e: "Recording refused" in e["detail"])
    assert "recording agreement" in refused["detail"] and "Kit" in refused["detail"]

    await _consent_to_recording(services, sessionmaker, org, clock)
    await tutor.send({"type": "record", "on": True})
    assert (await guardian.wait_for("recording", lambda m: m["state"] == "recording"))["label"] == "Recording"
    live = app[RECORDING]  # type: ignore[index]
    await until(lambda: live.service._live[org.booking_id].recorder.muxer.frames_written > 60, 15)

    async with sessionmaker() as s:  # the guardian withdraws the child's consent in mid-session
        await services.consent.withdraw(s, SETUP, f"guardian:{org.guardian_id}", f"client:{org.child_id}")
        await s.commit()
    services.consent.changed(f"client:{org.child_id}")
    paused = await guardian.wait_for("recording", lambda m: m["state"] == "paused", within=3)
    assert paused["label"].startswith("Paused:") and "Kit" in paused["label"]
    async with sessionmaker() as s:
        row = (await s.execute(select(Recording))).scalar_one()
    assert row.status == "stopped" and (row.status_reason or "").startswith("Paused")
    stored = Path(settings.home) / "recordings" / str(row.id)
    await until(lambda: stored.is_dir() and any(stored.iterdir()), 10)  # sealed chunks reached the store


async def _record_a_few_seconds(open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock,
                                sessionmaker: async_sessionmaker[AsyncSession], app: object) -> None:
    await _consent_to_recording(services, sessionmaker, org, clock)
    tutor = await open_caller(f"staff:{org.tutor_id}")
    guardian = await open_caller(f"guardian:{org.guardian_id}")
    await tutor.connect()
    await guardian.connect()
    await tutor.join_media(Peer("tutor", tag=1, tone=440))
    await guardian.join_media(Peer("guardian", tag=2, tone=880))
    await tutor.wait_for("members", lambda m: len(m["members"]) == 2
                         and all(x["publishing"]["video"] for x in m["members"]))
    await tutor.send({"type": "record", "on": True})
    await guardian.wait_for("recording", lambda m: m["state"] == "recording")
    live = app[RECORDING]  # type: ignore[index]
    await until(lambda: live.service._live[org.booking_id].recorder.muxer.frames_written > 500, 20)
    await tutor.send({"type": "record", "on": False})
    await guardian.wait_for("recording", lambda m: m["state"] == "off")


async def test_a_safeguarding_lead_reviews_with_a_reason_and_damage_is_reported(
    open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock, settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession], app: object, live_server: str,
) -> None:
    import io

    import av
    import pyotp
    from aiohttp import ClientSession, CookieJar

    from server.audit.models import AuditEvent
    from tests.support.org import PASSWORD

    await _record_a_few_seconds(open_caller, org, services, clock, sessionmaker, app)
    async with ClientSession(base_url=live_server, cookie_jar=CookieJar(unsafe=True)) as lead:
        me = await (await lead.post("/api/v1/auth/login", json={"email": org.email("safeguarding"),
                                                               "password": PASSWORD})).json()
        h = {"X-CSRF-Token": me["csrf_token"]}
        code = pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp()))
        await lead.post("/api/v1/auth/second-factor", json={"code": code}, headers=h)
        listed = await (await lead.get("/api/v1/recordings")).json()
        assert [r["client"] for r in listed] == ["Kit Child"]
        rid = listed[0]["id"]
        short = await lead.post(f"/api/v1/recordings/{rid}/views", json={"reason": "look"}, headers=h)
        assert short.status == 422 and "reason" in (await short.json())["detail"]
        assert (await lead.get(f"/api/v1/recordings/{rid}/media")).status == 403  # no reason given yet
        view = await lead.post(f"/api/v1/recordings/{rid}/views", headers=h,
                               json={"reason": "Concern 12 raised by the tutor about this lesson"})
        assert view.status == 201
        url = (await view.json())["media_url"]
        head = await lead.get(url, headers={"Range": "bytes=0-1023"})
        assert head.status == 206 and (await head.read())[:4] == b"\x1a\x45\xdf\xa3"  # a WebM file
        whole = await (await lead.get(url)).read()
        with av.open(io.BytesIO(whole)) as container:
            kinds = sorted(s.type for s in container.streams)
            decoded = sum(1 for _ in container.decode(video=0))
        assert kinds == ["audio", "audio", "video", "video"] and decoded > 30
        async with sessionmaker() as s:
            viewed = (await s.execute(select(AuditEvent).where(AuditEvent.action == "recording.viewed"))).scalar_one()
        assert "Concern 12" in viewed.details and viewed.actor == f"staff:{org.safeguarding_id}"

        chunk = sorted((Path(settings.home) / "recordings" / rid).iterdir())[1]
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
        damaged = await lead.get(url)
        problem = await damaged.json()
        assert damaged.status >= 400 and problem["type"].endswith("recording_damaged")
        assert "1" in problem["detail"]


async def test_someone_who_starts_publishing_during_a_recording_is_recorded_from_then_on(
    open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession], app: object,
) -> None:
    await _consent_to_recording(services, sessionmaker, org, clock)
    tutor = await open_caller(f"staff:{org.tutor_id}")
    guardian = await open_caller(f"guardian:{org.guardian_id}")
    await tutor.connect()
    await guardian.connect()
    await tutor.join_media(Peer("tutor", tag=1, tone=440))
    await tutor.wait_for("members", lambda m: any(x["publishing"]["video"] for x in m["members"]))
    await tutor.send({"type": "record", "on": True})  # only the tutor is seen and heard so far
    await guardian.wait_for("recording", lambda m: m["state"] == "recording")
    live = app[RECORDING]  # type: ignore[index]
    first = live.service.recording(org.booking_id)
    assert live.service.recorded(org.booking_id) == {f"staff:{org.tutor_id}"}

    await guardian.join_media(Peer("guardian", tag=2, tone=880))  # the family's camera comes on
    await until(lambda: live.service.recording(org.booking_id) not in (None, first), 15)
    assert live.service.recorded(org.booking_id) == {f"staff:{org.tutor_id}", f"guardian:{org.guardian_id}"}
    await until(lambda: live.service._live[org.booking_id].recorder.muxer.frames_written > 60, 15)
    async with sessionmaker() as s:
        ended = await s.get(Recording, first)
    assert ended is not None and ended.status == "stopped"
    assert ended.status_reason == f"segment ended to add guardian:{org.guardian_id}"


async def test_a_disk_filling_up_in_mid_recording_pauses_it_for_everyone(
    open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession], app: object, monkeypatch: pytest.MonkeyPatch,
) -> None:
    today = clock.now().date()
    async with sessionmaker() as s:
        await services.consent.set_staff_agreement(s, SETUP, org.tutor_id, today)
        await s.commit()
    tutor = await open_caller(f"staff:{org.tutor_id}")
    guardian = await open_caller(f"guardian:{org.guardian_id}")
    await tutor.connect()
    await guardian.connect()
    await tutor.join_media(Peer("tutor", tag=1, tone=440))
    await tutor.wait_for("members", lambda m: any(x["publishing"]["video"] for x in m["members"]))
    await tutor.send({"type": "record", "on": True})
    await guardian.wait_for("recording", lambda m: m["state"] == "recording")
    live = app[RECORDING]  # type: ignore[index]
    rid = live.service.recording(org.booking_id)
    monkeypatch.setattr(live.service._spool, "has_room", lambda: False)  # the spool disk is nearly full now
    paused = await guardian.wait_for("recording", lambda m: m["state"] == "paused", within=5)
    assert paused["label"] == "Paused: the server's recording disk is nearly full"
    assert live.service.recording(org.booking_id) is None
    async with sessionmaker() as s:
        row = await s.get(Recording, rid)
    assert row is not None and row.status == "stopped"
    assert row.status_reason == "Paused: the server's recording disk is nearly full"
