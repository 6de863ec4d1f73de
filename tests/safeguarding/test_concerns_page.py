"""The staff page /concerns in a real browser: the 24-hour discussion clock, counted from the server's time
(policies/000_*: "discussed within 24 hours with an appropriate manager"), and need-to-know (policies/004_*).

The FakeClock is far from the browser's clock, and the browser's own clock is set years away on purpose: a
page that counted from Date.now() would show nonsense here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Role
from server.audit.log import Actor
from server.clock import FakeClock
from server.mail.models import OutboxMessage
from server.safeguarding.models import Concern, ConcernCategory
from server.safeguarding.services import NewConcern
from server.services import Services
from tests.support.org import PASSWORD, Org, add_staff

pytestmark = pytest.mark.parametrize("backend", ["postgres"])  # the page under test; both backends elsewhere
WRONG_DEVICE_TIME = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)


async def _raise(services: Services, sessionmaker: async_sessionmaker[AsyncSession], staff_id: int,
                 category: ConcernCategory, details: str) -> int:
    async with sessionmaker() as s:
        concern = await services.safeguarding.raise_concern(s, Actor(f"staff:{staff_id}", "test"),
                                                            NewConcern(category, details))
        await s.commit()
        return concern.id


async def _phone(browser: Browser) -> tuple[BrowserContext, Page, list[str]]:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="Europe/London")
    await context.clock.install(time=WRONG_DEVICE_TIME)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return context, page, errors


async def _open_concerns(page: Page, live_server: str, org: Org, key: str) -> None:
    """Sign in as ``key`` (again, when the FakeClock has run past the login's idle limit) and follow the
    dashboard's link to the concerns page."""
    await page.goto(f"{live_server}/login")
    await page.get_by_test_id("login-email").fill(org.email(key))
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await page.get_by_test_id("concerns-link").click()
    await expect(page).to_have_url(f"{live_server}/concerns")


async def test_a_manager_sees_the_clock_run_out_and_records_the_discussion(
        browser: Browser, live_server: str, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    late = await _raise(services, sessionmaker, org.tutor_id, ConcernCategory.NEGLECT,
                        "Child arrived hungry and cold for the third week running.")
    context, page, errors = await _phone(browser)
    await _open_concerns(page, live_server, org, "manager")
    item = page.get_by_test_id("concern")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("Neglect (concern")
    await expect(item.get_by_test_id("concern-raised")).to_have_text(
        "Raised at 09:00 on 23 November 2026 by Tutor Person")
    await expect(item.get_by_test_id("concern-clock")).to_have_text("Discuss with a manager within 24 h 0 min")

    clock.advance(timedelta(hours=18, minutes=48))
    await _open_concerns(page, live_server, org, "manager")
    clock_text = page.get_by_test_id("concern-clock")
    await expect(clock_text).to_have_text("Discuss with a manager within 5 h 12 min")
    await context.clock.run_for("01:00")  # a minute passes on the device: the clock counts it down
    await expect(clock_text).to_have_text("Discuss with a manager within 5 h 11 min")

    clock.advance(timedelta(hours=5, minutes=12) + timedelta(hours=2, minutes=3))
    assert await services.safeguarding.escalate_due(sessionmaker) == 1
    fresh = await _raise(services, sessionmaker, org.other_tutor_id, ConcernCategory.BULLYING,
                         "Pupil says older children take her instrument on the bus.")
    await _open_concerns(page, live_server, org, "manager")
    newest, oldest = page.get_by_test_id("concern").nth(0), page.get_by_test_id("concern").nth(1)
    await expect(newest).to_contain_text(f"Bullying (concern {fresh})")
    await expect(newest.get_by_test_id("concern-clock")).to_have_text("Discuss with a manager within 24 h 0 min")
    await expect(oldest).to_contain_text(f"Neglect (concern {late})")
    await expect(oldest.get_by_test_id("concern-clock")).to_have_text(
        "Overdue by 2 h 3 min. Escalated at 11:03 on 24 November 2026.")
    await expect(oldest.get_by_test_id("concern-discussed")).to_be_hidden()

    await oldest.get_by_test_id("concern-note").fill("Spoke with the tutor; referral to children's services.")
    await oldest.get_by_test_id("concern-mark-discussed").click()
    await expect(oldest.get_by_test_id("concern-discussed")).to_have_text(
        "Discussed at 11:03 on 24 November 2026 by Manager Person (after the 24 hours)")
    await expect(oldest.get_by_test_id("concern-clock")).to_be_hidden()
    await expect(oldest.get_by_test_id("concern-discuss")).to_be_hidden()
    await expect(newest.get_by_test_id("concern-clock")).to_have_text("Discuss with a manager within 24 h 0 min")
    assert errors == []
    await context.close()


async def test_staff_without_a_reading_role_see_only_the_concerns_they_raised(
        browser: Browser, live_server: str, org: Org, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await add_staff(services, sessionmaker, "head", frozenset({Role.HEAD_OF_SERVICE}))
    await _raise(services, sessionmaker, org.tutor_id, ConcernCategory.NEGLECT,
                 "Child arrived hungry and cold for the third week running.")
    own = await _raise(services, sessionmaker, org.other_tutor_id, ConcernCategory.ONLINE_ABUSE,
                       "Client mentioned an adult messaging them through a game.")
    context, page, errors = await _phone(browser)
    await _open_concerns(page, live_server, org, "tutor2")
    await expect(page.get_by_test_id("concerns-scope")).to_contain_text("The concerns you raised")
    item = page.get_by_test_id("concern")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text(f"Online abuse (concern {own})")
    await expect(item.get_by_test_id("concern-clock")).to_have_text("Discuss with a manager within 24 h 0 min")
    await expect(item.get_by_test_id("concern-discuss")).to_be_hidden()  # only managers record the discussion
    await expect(page.get_by_text("hungry and cold")).to_have_count(0)
    await context.close()

    context, page, _ = await _phone(browser)
    await _open_concerns(page, live_server, org, "head")  # the head of service reads no one else's either
    await expect(page.get_by_test_id("no-concerns")).to_be_visible()
    await expect(page.get_by_test_id("concern")).to_have_count(0)
    assert errors == []
    await context.close()


async def test_a_practitioner_raises_a_concern_from_the_page_and_the_lead_is_told(
        browser: Browser, live_server: str, org: Org, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    context, page, errors = await _phone(browser)
    await _open_concerns(page, live_server, org, "tutor")
    await page.get_by_test_id("raise-concern").locator("summary").click()
    offered = await page.get_by_test_id("raise-category").locator("option").evaluate_all(
        "options => options.map(o => o.value)")
    assert sorted(offered) == sorted(c.value for c in ConcernCategory)  # the page offers every category
    await page.get_by_test_id("raise-category").select_option("bullying")
    await page.get_by_test_id("raise-client").select_option(label="Kit Child")
    await page.get_by_test_id("raise-details").fill("Kit said older pupils took his violin case at the bus stop.")
    await page.get_by_test_id("raise-submit").click()
    item = page.get_by_test_id("concern")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("Bullying (concern")
    await expect(item.get_by_test_id("concern-clock")).to_have_text("Discuss with a manager within 24 h 0 min")
    async with sessionmaker() as s:
        concern = (await s.execute(select(Concern))).scalar_one()
        told = (await s.execute(select(OutboxMessage.recipient).where(
            OutboxMessage.message_key.startswith(f"concern-{concern.id}.raised.")))).scalars().all()
    assert (concern.client_id, concern.raised_by) == (org.child_id, f"staff:{org.tutor_id}")
    assert "safeguarding@school.example.org" in told
    assert errors == []
    await context.close()
