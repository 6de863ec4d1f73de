"""Real browsers: the practitioner and a guardian see and hear each other through the relay, an observer is
announced to both. Headless chromium pages with a fake camera and microphone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pyotp
import pytest
from playwright.async_api import Browser, Page
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.services import Services
from tests.support.org import PASSWORD, Org, issue_link

# What is under test is media and the browser, not storage: one database (the production one) is enough
# here, and both backends are covered by every other test. Keeps the suite well under 20 minutes.
pytestmark = pytest.mark.parametrize("backend", ["postgres"])


async def _stats(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("() => window.duet.stats()")
    return result


async def _until_receiving(page: Page, within: float = 20.0) -> dict[str, Any]:
    """Wait until the page has decoded video and received audio, and both are still rising."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    first: dict[str, Any] | None = None
    while loop.time() < deadline:
        stats = await _stats(page)
        if stats["video"]["framesDecoded"] > 0 and stats["audio"]["packetsReceived"] > 0:
            if first is None:
                first = stats
            elif (stats["video"]["framesDecoded"] > first["video"]["framesDecoded"]
                  and stats["audio"]["packetsReceived"] > first["audio"]["packetsReceived"]):
                return stats
        await asyncio.sleep(0.2)
    state = await page.evaluate("() => [document.getElementById('error').textContent, window.duet.state()]")
    raise AssertionError(f"no rising video and audio on {page.url}: {await _stats(page)} {state}")


async def _open(browser: Browser, url: str) -> Page:
    ctx = await browser.new_context()
    page = await ctx.new_page()
    page.on("console", lambda m: print(f"console {url[-8:]}:", m.text))  # shown when the test fails
    await page.goto(url)
    return page


async def test_practitioner_and_guardian_in_chromium_with_an_observer(
    browser: Browser, live_server: str, org: Org, services: Services, clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    clock.advance(3600)  # inside the booked window
    tutor_token = await issue_link(services, sessionmaker, org.booking_id, f"staff:{org.tutor_id}")
    guardian_token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    tutor = await _open(browser, f"{live_server}/l/{tutor_token}")
    guardian = await _open(browser, f"{live_server}/l/{guardian_token}")
    for page in (tutor, guardian):
        await page.get_by_test_id("session-window").get_by_text("The session is open.").wait_for()
        await page.get_by_test_id("join").click()
    started = time.perf_counter()
    await asyncio.gather(_until_receiving(tutor), _until_receiving(guardian))
    print(f"\nboth sides decoding video and receiving audio {time.perf_counter() - started:.2f} s after join")
    assert await tutor.get_by_test_id("music-mode").is_visible()
    assert not await guardian.get_by_test_id("music-mode").is_visible()

    await guardian.get_by_test_id("chat-input").fill("Hello from Gail")
    await guardian.get_by_test_id("chat-send").click()
    await tutor.get_by_test_id("chat-log").get_by_text("Hello from Gail").wait_for(timeout=5000)

    lead_ctx = await browser.new_context()
    login = await lead_ctx.request.post(f"{live_server}/api/v1/auth/login",
                                        data={"email": org.email("safeguarding"), "password": PASSWORD})
    assert login.ok, await login.text()
    code = pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp()))
    second = await lead_ctx.request.post(f"{live_server}/api/v1/auth/second-factor", data={"code": code},
                                         headers={"X-CSRF-Token": (await login.json())["csrf_token"]})
    assert second.ok, await second.text()
    lead = await lead_ctx.new_page()
    lead.on("console", lambda m: print("console lead:", m.text))
    await lead.goto(f"{live_server}/s/{org.booking_id}")
    await lead.get_by_test_id("join").click()
    for page in (tutor, guardian, lead):
        await page.get_by_test_id("observer-banner").get_by_text("Safeguarding").wait_for(timeout=20000)
    await _until_receiving(lead)  # the observer receives everything
    assert await lead.evaluate("() => document.body.dataset.role") == "observer"

    await lead.get_by_test_id("leave").click()
    await tutor.get_by_test_id("observer-banner").wait_for(state="hidden", timeout=10000)
    await guardian.get_by_test_id("leave").click()
    await tutor.locator(".tile.remote").wait_for(state="detached", timeout=10000)
    await tutor.get_by_test_id("leave").click()
    await tutor.get_by_test_id("join").wait_for()
    for page in (tutor, guardian, lead):
        await page.context.close()
