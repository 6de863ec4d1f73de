"""The staff pages in a real browser: sign in, the second factor, today's sessions and people."""

from __future__ import annotations

import pyotp
from playwright.async_api import Browser, expect

from server.clock import FakeClock
from tests.support.org import PASSWORD, Org


async def test_a_tutor_signs_in_and_sees_todays_session(browser: Browser, live_server: str, org: Org) -> None:
    page = await (await browser.new_context()).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{live_server}/dashboard")
    await expect(page.get_by_test_id("login-form")).to_be_visible()  # sent to the sign-in page
    await page.get_by_test_id("login-email").fill(org.email("tutor"))
    await page.get_by_test_id("login-password").fill("wrong password!!")
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("login-error")).to_contain_text("do not match")
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id(f"booking-{org.booking_id}")).to_contain_text("Kit Child")
    await expect(page.get_by_test_id("people")).to_contain_text("Gail Guardian (PR)")
    await expect(page.get_by_test_id(f"check-{org.booking_id}")).to_have_text("no device check yet")
    # No CSP violations or script errors; the refused password is the only failed request.
    assert [e for e in errors if "401 (Unauthorized)" not in e] == []


async def test_the_safeguarding_lead_gives_a_code_after_the_password(
    browser: Browser, live_server: str, org: Org, clock: FakeClock
) -> None:
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{live_server}/login")
    await page.get_by_test_id("login-email").fill(org.email("safeguarding"))
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("code-form")).to_be_visible()
    await page.get_by_test_id("login-code").fill(pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp())))
    await page.get_by_test_id("code-submit").click()
    await expect(page.get_by_test_id("who")).to_contain_text("safeguarding")
    await expect(page.get_by_test_id(f"booking-{org.booking_id}")).to_be_visible()
