"""The practitioner's phone page /visits in a real browser: itinerary, check-in, the 5-minute door wait."""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import Browser, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor
from server.bookings.models import BookingKind
from server.clock import FakeClock
from server.services import Services
from server.visits.rules import Conditions
from server.visits.services import NewVisit
from tests.support.org import PASSWORD, Org
from tests.support.visits import put_on_map


async def test_a_practitioner_records_itinerary_check_in_and_a_no_show_from_a_phone(
        browser: Browser, live_server: str, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    async with sessionmaker() as s:
        booking, _ = await services.visits.book(s, Actor("test:setup"), NewVisit(
            kind=BookingKind.HOME_VISIT, practitioner_id=org.other_tutor_id, client_id=org.child_id,
            starts_at=clock.now().replace(hour=14), duration_minutes=30, guardian_ids=(org.guardian_id,),
            conditions=Conditions(True, True, True, True, "signed form"),
            conditions_confirmed_by=f"guardian:{org.guardian_id}"))
        await services.visits.authorise(s, Actor("test:setup"), org.manager_id, booking.id, "piano tuition")
        await s.commit()
    context = await browser.new_context(viewport={"width": 390, "height": 844}, timezone_id="Europe/London")
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{live_server}/login")
    await page.get_by_test_id("login-email").fill(org.email("tutor2"))
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("who")).to_be_visible()
    await page.goto(f"{live_server}/visits")
    card = page.get_by_test_id("visit")
    await expect(card).to_contain_text("1 High Street, Histon")
    await expect(card.get_by_test_id("status")).to_contain_text("Record your itinerary")
    await card.locator("input[name=arrival]").fill("13:55")
    await card.locator("input[name=return]").fill("14:45")
    await card.get_by_role("button", name="Save itinerary").click()
    await expect(card.get_by_test_id("status")).to_contain_text("back by 14:45")
    await card.get_by_test_id("check-in").click()
    await expect(card.get_by_test_id("status")).to_contain_text("Checked in at")
    await card.get_by_test_id("no-show").click()
    await expect(page.get_by_test_id("error")).to_contain_text("Wait at the door for 5 minutes")
    clock.advance(timedelta(minutes=5))
    await card.get_by_test_id("no-show").click()
    await expect(card.get_by_test_id("status")).to_contain_text("No-show recorded")
    await expect(card.get_by_test_id("check-out")).to_be_hidden()
    assert [e for e in errors if "409" not in e] == []
    await context.close()
