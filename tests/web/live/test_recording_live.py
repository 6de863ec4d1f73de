"""Recording in a live session: refused without consent, on with it, paused at once on withdrawal."""

from __future__ import annotations

import asyncio
import io
import re
import time
from pathlib import Path

import av
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.config import Settings
from server.consent.services import Grant
from server.recording.models import Recording
from server.services import Services
from server.web.keys import RECORDING, SERVICES
from server.web.live.recording import LiveRecording
from tests.media.peers import Peer, until
from tests.support.org import SETUP, Org
from tests.web.live.conftest import Caller, OpenCaller, tutor_and_guardian


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
    tutor, guardian = await tutor_and_guardian(open_caller, org)
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
    began = time.monotonic()
    live = app[RECORDING]  # type: ignore[index]
    await until(lambda: live.service.frames_written(org.booking_id) > 60, 15)
    await asyncio.sleep(1.5)
    withdrawn_after = time.monotonic() - began

    async with sessionmaker() as s:  # the guardian withdraws the child's consent in mid-session
        await services.consent.withdraw(s, SETUP, f"guardian:{org.guardian_id}", f"client:{org.child_id}")
        await s.commit()
    paused = await guardian.wait_for("recording", lambda m: m["state"] == "paused", within=3)
    assert paused["label"].startswith("Paused:") and "Kit" in paused["label"]
    async with sessionmaker() as s:
        row = (await s.execute(select(Recording))).scalar_one()
    assert row.status == "stopped" and (row.status_reason or "").startswith("Paused")
    await asyncio.sleep(2.0)  # the session carries on; nothing of it may be stored
    await asyncio.wait_for(services.spool.wait_idle(), 10)
    webm = await (await app[SERVICES].review.reader(row)).read_all()  # type: ignore[index]
    for stream in av.open(io.BytesIO(webm)).streams:
        if stream.type == "video":
            with av.open(io.BytesIO(webm)) as container:
                times = [float(p.pts * p.time_base) for p in container.demux(container.streams[stream.index])
                         if p.size]
            # the stored recording ends at the withdrawal (within the time to react), not 2 s later
            assert withdrawn_after - 1.0 < times[-1] < withdrawn_after + 0.6, (times[-1], withdrawn_after)


async def _both_recording(open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock,
                          sessionmaker: async_sessionmaker[AsyncSession], app: object
                          ) -> tuple[Caller, Caller, LiveRecording]:
    """Everyone has consented; the tutor and the guardian are on camera and the tutor has started recording."""
    await _consent_to_recording(services, sessionmaker, org, clock)
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await tutor.join_media(Peer("tutor", tag=1, tone=440))
    await guardian.join_media(Peer("guardian", tag=2, tone=880))
    await tutor.wait_for("members", lambda m: len(m["members"]) == 2
                         and all(x["publishing"]["video"] for x in m["members"]))
    await tutor.send({"type": "record", "on": True})
    await guardian.wait_for("recording", lambda m: m["state"] == "recording")
    return tutor, guardian, app[RECORDING]  # type: ignore[index]


async def _record_a_few_seconds(open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock,
                                sessionmaker: async_sessionmaker[AsyncSession], app: object) -> None:
    tutor, guardian, live = await _both_recording(open_caller, org, services, clock, sessionmaker, app)
    await until(lambda: live.service.frames_written(org.booking_id) > 250, 20)
    await guardian.send({"type": "chat", "text": "Kit played the scale twice <3"})
    await until(lambda: live.service.frames_written(org.booking_id) > 500, 20)
    await tutor.send({"type": "record", "on": False})
    await until(lambda: live.service.recording(org.booking_id) is None, 10)  # the last chunk is sealed


async def test_a_safeguarding_lead_reviews_with_a_reason_and_damage_is_reported(
    open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock, settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession], app: object, live_server: str,
) -> None:

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
        assert listed[0]["consent_scopes"] == ["record", "safeguarding"] and listed[0]["holds"] == []
        assert listed[0]["duration_seconds"] >= 2
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
        assert kinds == ["audio", "audio", "subtitle", "video", "video"] and decoded > 30
        with av.open(io.BytesIO(whole)) as container:  # the session chat, as a cue naming who wrote it
            cues = [(float(p.pts * p.time_base), bytes(p).decode())
                    for p in container.demux(subtitles=0) if p.size]
        assert [text for _, text in cues] == ["<v Gail Guardian>Kit played the scale twice &lt;3"]
        assert 1.0 < cues[0][0] < 15.0, cues
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
    tutor, guardian = await tutor_and_guardian(open_caller, org)
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
    await until(lambda: live.service.frames_written(org.booking_id) > 60, 15)
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
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await tutor.join_media(Peer("tutor", tag=1, tone=440))
    await tutor.wait_for("members", lambda m: any(x["publishing"]["video"] for x in m["members"]))
    await tutor.send({"type": "record", "on": True})
    await guardian.wait_for("recording", lambda m: m["state"] == "recording")
    live = app[RECORDING]  # type: ignore[index]
    rid = live.service.recording(org.booking_id)
    monkeypatch.setattr(services.spool, "has_room", lambda: False)  # the spool disk is nearly full now
    paused = await guardian.wait_for("recording", lambda m: m["state"] == "paused", within=5)
    assert paused["label"] == "Paused: the server's recording disk is nearly full"
    assert live.service.recording(org.booking_id) is None
    async with sessionmaker() as s:
        row = await s.get(Recording, rid)
    assert row is not None and row.status == "stopped"
    assert row.status_reason == "Paused: the server's recording disk is nearly full"


@pytest.mark.parametrize("backend", ["postgres"])  # media under test; both backends elsewhere
async def test_a_family_that_rejoins_after_a_network_drop_is_recorded_where_they_were_back(
    open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession], app: object,
) -> None:
    """The rejoined connection's clock starts again; the stored video shows the gap where it happened and
    ends with the tutor's, instead of the second stretch being squeezed in after the first."""

    tutor, guardian, live = await _both_recording(open_caller, org, services, clock, sessionmaker, app)
    rid = live.service.recording(org.booking_id)
    await until(lambda: live.service.frames_written(org.booking_id) > 200, 20)

    await guardian.rejoin_media(Peer("guardian-again", tag=2, tone=880), away=2.5)  # away for a while
    written = live.service.frames_written(org.booking_id)
    await until(lambda: live.service.frames_written(org.booking_id) > written + 300, 20)
    assert live.service.recording(org.booking_id) == rid  # the same segment carries on
    await tutor.send({"type": "record", "on": False})
    await until(lambda: live.service.recording(org.booking_id) is None, 10)  # the last chunk is sealed

    async with sessionmaker() as s:
        row = await s.get(Recording, rid)
    assert row is not None
    await asyncio.wait_for(services.spool.wait_idle(), 10)  # every sealed chunk is in the store
    webm = await (await app[SERVICES].review.reader(row)).read_all()  # type: ignore[index]
    ends: dict[str, float] = {}
    for title in (f"staff:{org.tutor_id} video", f"guardian:{org.guardian_id} video"):
        with av.open(io.BytesIO(webm)) as container:
            stream = next(s for s in container.streams if s.metadata.get("title") == title)
            times = [float(p.pts * p.time_base) for p in container.demux(stream) if p.size]
        ends[title] = times[-1]
        if title.startswith("guardian"):
            assert max(b - a for a, b in zip(times, times[1:], strict=False)) > 2.0, "the time away is not kept"
    tutor_end, guardian_end = ends.values()
    assert abs(tutor_end - guardian_end) < 1.0, ends


@pytest.mark.parametrize("backend", ["postgres"])  # media under test; both backends elsewhere
async def test_the_lead_sees_length_and_allowed_uses_then_plays_the_recording_in_chromium(
    open_caller: OpenCaller, org: Org, services: Services, clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession], app: object, live_server: str, browser: Browser,
) -> None:
    import pyotp

    from tests.support.org import PASSWORD

    await _record_a_few_seconds(open_caller, org, services, clock, sessionmaker, app)
    async with sessionmaker() as s:
        rid = str((await s.execute(select(Recording))).scalar_one().id)
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{live_server}/login")
    await page.get_by_test_id("login-email").fill(org.email("safeguarding"))
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await page.get_by_test_id("login-code").fill(pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp())))
    await page.get_by_test_id("code-submit").click()
    await expect(page.get_by_test_id("who")).to_contain_text("safeguarding")
    await page.goto(f"{live_server}/recordings")
    await expect(page.get_by_test_id(f"uses-{rid}")).to_have_text("recorded, safeguarding and quality monitoring")
    await expect(page.get_by_test_id(f"holds-{rid}")).to_have_text("none")
    await expect(page.get_by_test_id(f"length-{rid}")).to_have_text(re.compile(r"^0:\d\d$"))
    await page.get_by_test_id(f"view-{rid}").click()
    await page.get_by_test_id("view-reason").fill("Quality check of the lesson after a complaint")
    await page.get_by_test_id("view-submit").click()
    player = page.get_by_test_id("player")
    await expect(player).to_be_visible()
    await player.evaluate("v => { v.muted = true; return v.play(); }")
    await page.wait_for_function("() => document.querySelector('[data-testid=player]').currentTime > 1.0",
                                 timeout=15000)
    assert await page.get_by_test_id("player").evaluate("v => v.videoWidth") > 0  # pictures, decoded by Chromium
