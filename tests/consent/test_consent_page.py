"""The consent page in headless Chromium: a guardian reads the notice, ticks scopes, saves, and withdraws
with one click; the database holds each step as its own row."""

from __future__ import annotations

from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.consent.models import ConsentRecord
from server.links.models import LinkPurpose
from server.services import Services
from tests.support.org import Org, issue_link


async def test_a_guardian_gives_and_withdraws_consent_on_the_page(
        browser: Browser, live_server: str, org: Org, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}",
                             LinkPurpose.CONSENT)
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto(f"{live_server}/l/{token}")
    assert page.url == f"{live_server}/s/{org.booking_id}/consent"
    await expect(page.get_by_test_id("privacy-notice")).to_contain_text("Who can see it")
    await expect(page.get_by_test_id("consent-status")).to_contain_text("No consent in force for Kit")
    await page.get_by_test_id("scope-record").check()
    await page.get_by_test_id("scope-safeguarding").check()
    await page.get_by_test_id("consent-submit").click()
    await expect(page.get_by_test_id("consent-status")).to_contain_text("record, safeguarding")
    await expect(page.get_by_test_id("scope-feedback")).not_to_be_checked()
    await page.get_by_test_id("consent-withdraw").click()
    await expect(page.get_by_test_id("consent-status")).to_contain_text("Consent withdrawn")
    await expect(page.get_by_test_id("scope-record")).not_to_be_checked()
    async with sessionmaker() as s:
        rows = (await s.scalars(select(ConsentRecord).order_by(ConsentRecord.id))).all()
    assert [(r.covers, sorted(r.scopes), r.withdrawn_at is not None) for r in rows] == [
        (f"client:{org.child_id}", ["record", "safeguarding"], False), (f"client:{org.child_id}", [], True)]
    await context.close()
