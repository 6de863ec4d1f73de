"""The practitioner's phone page /visits in a real browser: itinerary, check-in, the 5-minute door wait."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor
from server.bookings.models import Booking, BookingKind, BookingStatus
from server.bookings.services import NewBooking
from server.clock import FakeClock
from server.safeguarding.models import Concern
from server.services import Services
from server.visits.models import Visit, VisitAlert
from server.visits.rules import Conditions
from server.visits.services import NewVisit
from tests.support.org import PASSWORD, Org
from tests.support.visits import put_on_map

pytestmark = pytest.mark.parametrize("backend", ["postgres"])  # the pages under test; both backends elsewhere


async def _requested_home_visit(services: Services, s: AsyncSession, org: Org, clock: FakeClock) -> Booking:
    """The second tutor's home visit to Kit at 14:00 today, its conditions confirmed, not yet authorised."""
    booking, _ = await services.visits.book(s, Actor("test:setup"), NewVisit(
        kind=BookingKind.HOME_VISIT, practitioner_id=org.other_tutor_id, client_id=org.child_id,
        starts_at=clock.now().replace(hour=14), duration_minutes=30, guardian_ids=(org.guardian_id,),
        conditions=Conditions(True, True, True, True, "signed form"),
        conditions_confirmed_by=f"guardian:{org.guardian_id}"))
    return booking


async def _checked_in_on_a_phone(browser: Browser, live_server: str, org: Org, clock: FakeClock,
                                 services: Services, sessionmaker: async_sessionmaker[AsyncSession]
                                 ) -> tuple[BrowserContext, Page, Locator, list[str]]:
    """An authorised home visit at 14:00 for the second tutor, who signs in on a phone, records the
    itinerary and checks in; returns the page, the visit's card and the console errors."""
    await put_on_map(org, sessionmaker)
    async with sessionmaker() as s:
        booking = await _requested_home_visit(services, s, org, clock)
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
    return context, page, card, errors


async def test_a_practitioner_records_itinerary_check_in_and_a_no_show_from_a_phone(
        browser: Browser, live_server: str, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    context, page, card, errors = await _checked_in_on_a_phone(browser, live_server, org, clock, services,
                                                               sessionmaker)
    await card.get_by_test_id("no-show").click()
    await expect(page.get_by_test_id("error")).to_contain_text("Wait at the door for 5 minutes")
    clock.advance(timedelta(minutes=5))
    await card.get_by_test_id("no-show").click()
    await expect(card.get_by_test_id("status")).to_contain_text("No-show recorded")
    await expect(card.get_by_test_id("check-out")).to_be_hidden()
    assert [e for e in errors if "409" not in e and "404" not in e] == []  # refusals; no after-visit record yet
    await context.close()


async def test_after_check_out_the_record_is_made_and_a_concern_raised_about_the_visit(
        browser: Browser, live_server: str, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    context, page, card, errors = await _checked_in_on_a_phone(browser, live_server, org, clock, services,
                                                               sessionmaker)
    clock.advance(timedelta(minutes=20))
    await card.get_by_test_id("check-out").click()
    await expect(card.get_by_test_id("status")).to_contain_text("Checked out at")
    await card.get_by_test_id("after-notes").fill("Scales and a new piece. Kit had a bruise he would not explain.")
    await card.get_by_test_id("after-yes").check()
    await card.get_by_test_id("after-submit").click()
    await expect(card.get_by_test_id("after-done")).to_contain_text("After-visit record saved at")
    raise_now = card.get_by_test_id("after-raise")
    await expect(raise_now).to_contain_text("raise the concern now")
    await expect(card.get_by_test_id("after-visit")).to_be_hidden()  # made once, not edited afterwards

    await raise_now.get_by_role("link").click()
    await expect(page.get_by_test_id("raise-about")).to_have_text(re.compile(r"^About visit \d+\.$"))
    await page.get_by_test_id("raise-category").select_option("physical_abuse")
    await page.get_by_test_id("raise-details").fill("Bruise on Kit's forearm, seen at today's home visit.")
    await page.get_by_test_id("raise-submit").click()
    await expect(page.get_by_test_id("concern")).to_contain_text("Physical abuse (concern")
    async with sessionmaker() as s:
        concern = (await s.execute(select(Concern))).scalar_one()
    assert concern.booking_id is not None and concern.client_id == org.child_id

    await page.goto(f"{live_server}/visits")
    await expect(card.get_by_test_id("after-done")).to_contain_text(f"concern {concern.id} raised about this visit")
    await expect(card.get_by_test_id("after-raise")).to_be_hidden()
    assert [e for e in errors if "404" not in e] == []  # the record's 404 before it was made
    await context.close()


async def test_the_manager_sees_an_overdue_check_out_on_the_dashboard_and_acknowledges_it(
        browser: Browser, live_server: str, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    context, _, _, _ = await _checked_in_on_a_phone(browser, live_server, org, clock, services, sessionmaker)
    await context.close()
    clock.set(clock.now().replace(hour=15, minute=5))  # expected back 14:45; 15 minutes' grace have passed
    assert await services.overdue.step(sessionmaker) == 1

    manager = await (await browser.new_context(timezone_id="Europe/London")).new_page()
    await manager.goto(f"{live_server}/login")
    await manager.get_by_test_id("login-email").fill(org.email("manager"))
    await manager.get_by_test_id("login-password").fill(PASSWORD)
    await manager.get_by_test_id("login-submit").click()
    overdue = manager.get_by_test_id("overdue")
    await expect(overdue).to_contain_text("expected back 14:45, NOT BACK")
    await expect(overdue).to_contain_text("1 High Street, Histon")
    await expect(overdue.get_by_test_id("overdue-alert")).to_have_text("manager alert sent at 15:05")
    await overdue.get_by_test_id("acknowledge").click()
    await expect(overdue.get_by_test_id("overdue-alert")).to_have_text(
        "manager alert sent at 15:05, acknowledged at 15:05")
    await expect(overdue.get_by_test_id("acknowledge")).to_have_count(0)
    async with sessionmaker() as s:
        alert = (await s.execute(select(VisitAlert))).scalar_one()
    assert alert.acknowledged_by_id == org.manager_id  # who took it in hand, as well as when


async def test_a_manager_authorises_a_visit_and_agrees_evening_work_from_the_dashboard(
        browser: Browser, live_server: str, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    today = clock.now().date()
    async with sessionmaker() as s:
        visit = await _requested_home_visit(services, s, org, clock)
        await services.visits.mark_unavailable(s, Actor("test:setup"), org.manager_id, org.tutor_id, today,
                                               "off sick this morning")
        evening = await services.bookings.create(s, Actor("test:setup"), NewBooking(
            kind=BookingKind.LIVE_VIDEO, practitioner_id=org.tutor_id, client_id=org.child_id,
            starts_at=clock.now().replace(hour=17, minute=30), duration_minutes=60, guardian_ids=(org.guardian_id,)))
        await s.commit()
    assert evening.status == BookingStatus.REQUESTED  # held, uninvited, until a manager agrees

    page = await (await browser.new_context(timezone_id="Europe/London")).new_page()
    await page.goto(f"{live_server}/login")
    await page.get_by_test_id("login-email").fill(org.email("manager"))
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    first, second = page.get_by_test_id(f"waiting-{visit.id}"), page.get_by_test_id(f"waiting-{evening.id}")
    await expect(first).to_contain_text("14:00: home visit with Kit Child (Tutor2 Person)")
    await expect(first).to_contain_text("Needs authorisation")
    await expect(second).to_contain_text("Needs evening agreement: the practitioner was unavailable during the day")
    await first.get_by_test_id("waiting-text").fill("Piano tuition at home while the arm heals")
    await first.get_by_test_id("waiting-submit").click()
    await expect(first).to_have_count(0)
    await second.get_by_test_id("waiting-text").fill("Exam next week; the tutor has recovered")
    await second.get_by_test_id("waiting-submit").click()
    await expect(page.get_by_test_id("waiting")).to_be_hidden()  # nothing waits any more
    async with sessionmaker() as s:
        statuses = {b.id: b.status for b in (await s.execute(select(Booking).where(
            Booking.id.in_([visit.id, evening.id])))).scalars()}
        authorised = await s.get_one(Visit, (await s.execute(select(Visit.id).where(
            Visit.booking_id == visit.id))).scalar_one())
    assert statuses == {visit.id: BookingStatus.CONFIRMED, evening.id: BookingStatus.CONFIRMED}
    assert (authorised.purpose, authorised.authorised_by_id) == ("Piano tuition at home while the arm heals",
                                                                org.manager_id)
