"""End to end in headless Chromium: the demo call is recorded for 10 s, exported, and both people decode.

The demo organisation (``run_demo``, as ``duet demo`` makes it) has consent for its first booking and none
for the second, where the practitioner's record toggle is refused in words on the page.
"""

from __future__ import annotations

import asyncio
import io
from urllib.parse import urlsplit

import av
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.demo import run_demo
from server.recording.models import Recording
from server.recording.reader import Completeness
from server.services import Services
from server.web.keys import SERVICES
from tests.web.live.test_browser import _open, _until_receiving

# What is under test is media and the browser, not storage: one database (the production one) is enough
# here, and both backends are covered by every other test. Keeps the suite well under 20 minutes.
pytestmark = pytest.mark.parametrize("backend", ["postgres"])

RECORD_SECONDS = 10.0


async def _join(browser: Browser, live_server: str, url: str) -> Page:
    page = await _open(browser, live_server + urlsplit(url).path)  # the demo's link, on this test server
    await page.get_by_test_id("session-window").get_by_text("The session is open.").wait_for()
    await page.get_by_test_id("join").click()
    return page


async def test_the_demo_call_is_recorded_exported_and_both_people_decode_for_ten_seconds(
    browser: Browser, live_server: str, app: web.Application, services: Services,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as s:
        demo = await run_demo(services, s)
    tutor = await _join(browser, live_server, demo["practitioner_join_url"])
    guardian = await _join(browser, live_server, demo["guardian_join_url"])
    await asyncio.gather(_until_receiving(tutor), _until_receiving(guardian))

    await tutor.get_by_test_id("record").click()
    await expect(guardian.get_by_test_id("recording-state")).to_have_text("Recording")
    await asyncio.sleep(RECORD_SECONDS / 2)
    await guardian.get_by_test_id("chat-input").fill("Sam is ready for the next piece")
    await guardian.get_by_test_id("chat-send").click()
    await expect(tutor.get_by_test_id("chat-log")).to_contain_text("Sam is ready for the next piece")
    await asyncio.sleep(RECORD_SECONDS / 2)
    await tutor.get_by_test_id("record").click()
    await expect(tutor.get_by_test_id("recording-state")).to_have_text("Not recording")

    async with sessionmaker() as s:
        row = (await s.scalars(select(Recording).where(Recording.booking_id == demo["booking_id"]))).one()
    review = app[SERVICES].review
    for _ in range(100):  # the spool uploads the last chunk in the background
        reader = await review.reader(row)
        if reader.state.completeness is Completeness.COMPLETE:
            break
        await asyncio.sleep(0.1)
    assert reader.state.completeness is Completeness.COMPLETE
    container = av.open(io.BytesIO(await reader.read_all()))
    media = [s for s in container.streams if s.type in ("audio", "video")]
    titles = sorted(str(stream.metadata.get("title", "")) for stream in media)
    assert len(titles) == 4 and {t.split()[-1] for t in titles} == {"audio", "video"}, titles
    cues = [(float(p.pts * p.time_base), bytes(p).decode()) for p in container.demux(subtitles=0) if p.size]
    assert len(cues) == 1 and cues[0][1].endswith(">Sam is ready for the next piece"), cues
    assert abs(cues[0][0] - RECORD_SECONDS / 2) < 2.0, cues  # where it was said, in the recording's time
    spans = {}
    for stream in media:
        index = stream.index
        decoding = av.open(io.BytesIO(await reader.read_all()))
        frames = [f for f in decoding.decode(decoding.streams[index]) if f.time is not None]
        spans[str(stream.metadata.get("title"))] = frames[-1].time - frames[0].time
    assert all(RECORD_SECONDS - 1 <= span <= RECORD_SECONDS + 1 for span in spans.values()), spans

    tutor2 = await _join(browser, live_server, demo["unconsented_practitioner_join_url"])
    guardian2 = await _join(browser, live_server, demo["unconsented_guardian_join_url"])
    await asyncio.gather(_until_receiving(tutor2), _until_receiving(guardian2))
    await tutor2.get_by_test_id("record").click()
    await expect(tutor2.locator("#error")).to_contain_text("Recording refused")
    await expect(guardian2.get_by_test_id("recording-state")).to_have_text("Not recording")
