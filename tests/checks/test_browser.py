"""The whole device check in headless chromium with a fake camera and microphone: "video ready".

The video loopback runs too: Chromium's fake camera goes to the relay and comes back, and the frames
and bitrate it received are stored with the run.
"""

from __future__ import annotations

import json

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.checks.models import CheckRun
from server.links.models import LinkPurpose
from server.services import Services
from tests.support.org import Org, issue_link

# What is under test is media and the browser, not storage: one database (the production one) is enough
# here, and both backends are covered by every other test. Keeps the suite well under 20 minutes.
pytestmark = pytest.mark.parametrize("backend", ["postgres"])


async def test_a_guardian_runs_the_check_and_is_video_ready(
    browser: Browser, live_server: str, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}", LinkPurpose.CHECK)
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{live_server}/l/{token}")
    await page.get_by_test_id("check-device").fill("family laptop")
    await page.get_by_test_id("check-shared").fill("nobody else")
    await page.get_by_test_id("check-headphones").check()
    await page.get_by_test_id("check-start").click()
    await page.get_by_test_id("check-heard").click(timeout=15000)
    await expect(page.get_by_test_id("check-verdict")).to_have_text("video ready", timeout=30000)
    await expect(page.get_by_test_id("check-steps")).to_contain_text("Connection:")
    await expect(page.get_by_test_id("check-steps")).to_contain_text("Your video back from our server:")
    async with sessionmaker() as s:
        run = (await s.scalars(select(CheckRun).where(CheckRun.booking_id == org.booking_id))).one()
    measured = json.loads(run.measurements)
    assert measured["loopback_fps"] >= 10 and measured["loopback_kbps"] > 50, measured
