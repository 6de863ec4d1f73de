"""Concerns (policies/004_*, 001_*): anyone raises one, few may read it, 24 hours to discuss, holds on recordings."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default

from aiohttp.test_utils import TestClient
from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Role
from server.audit.log import Actor
from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.mail.models import OutboxMessage
from server.recording.holds import Holds
from server.safeguarding.models import Concern, ConcernCategory
from server.safeguarding.services import NewConcern, SafeguardingService
from server.services import Services
from tests.support.org import Org, add_staff, issue_link
from tests.support.visits import People

CONCERN = {"category": "neglect", "details": "Child arrived hungry and cold for the third week running."}


async def test_a_concern_is_seen_only_by_safeguarding_managers_and_its_raiser(people: People, org: Org) -> None:
    status, concern = await people.post("tutor", "/api/v1/concerns", CONCERN | {"booking_id": org.booking_id})
    assert status == 201 and concern["client_id"] == org.child_id
    path = f"/api/v1/concerns/{concern['id']}"
    for reader in ("tutor", "manager", "safeguarding"):
        status, seen = await people.get(reader, path)
        assert status == 200 and seen["details"] == CONCERN["details"], reader
    for outsider in ("tutor2", "admin"):
        status, _ = await people.get(outsider, path)
        assert status == 404, outsider
        status, listed = await people.get(outsider, "/api/v1/concerns")
        assert listed == [], outsider
    status, listed = await people.get("manager", "/api/v1/concerns")
    assert [c["id"] for c in listed] == [concern["id"]]


async def test_the_categories_are_those_of_the_policy(people: People) -> None:
    assert {"neglect", "radicalisation", "fgm", "online_abuse", "allegation_against_staff"} <= {
        c.value for c in ConcernCategory}
    status, problem = await people.post("tutor", "/api/v1/concerns", CONCERN | {"category": "gossip"})
    assert status == 422 and problem["field"] == "category"


async def test_a_parent_raises_a_concern_through_their_link_and_gets_a_receipt_not_the_record(
        client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
        people: People) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    parent = await people.new_client()  # a browser of its own: the parent is not signed in as staff
    opened = await parent.get(f"/l/{token}", allow_redirects=False)
    assert opened.status == 303
    context = await (await parent.get(f"/s/{org.booking_id}/api/context")).json()
    response = await parent.post(f"/s/{org.booking_id}/api/concern", json=CONCERN | {"category": "bullying"},
                                 headers={"X-CSRF-Token": context["csrf_token"]})
    assert response.status == 201, await response.text()
    receipt = await response.json()
    assert "details" not in receipt and "safeguarding lead" in receipt["message"]
    assert "Childline" in receipt["message"] and "CEOP" in receipt["message"]  # policies/000_*: other routes
    status, concern = await people.get("safeguarding", f"/api/v1/concerns/{receipt['id']}")
    assert concern["raised_by"] == f"guardian:{org.guardian_id}" and concern["booking_id"] == org.booking_id
    response = await parent.post(f"/s/{org.booking_id}/api/concern", json=CONCERN)
    assert response.status == 403  # no CSRF token


async def test_a_family_link_raises_a_few_concerns_a_day_and_the_lead_is_told_once_when_it_tries_more(
        client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
        people: People, clock: FakeClock) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    parent = await people.new_client()
    assert (await parent.get(f"/l/{token}", allow_redirects=False)).status == 303
    csrf = (await (await parent.get(f"/s/{org.booking_id}/api/context")).json())["csrf_token"]

    async def raise_one() -> tuple[int, dict[str, object]]:
        response = await parent.post(f"/s/{org.booking_id}/api/concern", json=CONCERN,
                                     headers={"X-CSRF-Token": csrf})
        return response.status, await response.json()

    for _ in range(5):
        assert (await raise_one())[0] == 201
    for _ in range(3):  # refused, in words that still point to help
        status, problem = await raise_one()
        assert status == 429 and "safeguarding lead has every one" in str(problem["detail"])
        assert "999" in str(problem["detail"])
    async with sessionmaker() as s:
        told = (await s.execute(select(OutboxMessage.recipient).where(
            OutboxMessage.message_key.startswith("concern-limit.")))).scalars().all()
        events = (await s.execute(select(AuditEvent).where(AuditEvent.action == "concern.link_limit_reached"))
                  ).scalars().all()
        raised = (await s.execute(select(Concern).where(Concern.raised_by == f"guardian:{org.guardian_id}"))
                  ).scalars().all()
    assert told == [org.email("safeguarding")] and len(events) == 1  # once, not per refusal
    assert len(raised) == 5
    clock.advance(timedelta(days=1, minutes=1))  # a new day (the link itself has ended with the session)
    async with sessionmaker() as s:
        again = await services.safeguarding.raise_from_link(s, Actor(f"guardian:{org.guardian_id}", "link:1"),
                                                            NewConcern(ConcernCategory.NEGLECT, CONCERN["details"]))
        assert again.id > max(c.id for c in raised)


async def test_a_concern_not_discussed_within_24_hours_is_escalated_once(
        people: People, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    _, late = await people.post("tutor", "/api/v1/concerns", CONCERN)
    _, on_time = await people.post("tutor", "/api/v1/concerns", CONCERN | {"category": "bullying"})
    assert datetime.fromisoformat(late["discuss_by"]) == clock.now() + timedelta(hours=24)
    clock.advance(timedelta(hours=23))
    status, discussed = await people.post("manager", f"/api/v1/concerns/{on_time['id']}/discussed",
                                          {"note": "Spoke with the tutor; monitoring."})
    assert status == 200 and discussed["discussed_with_id"] == org.manager_id
    assert await services.safeguarding.escalate_due(sessionmaker) == 0
    clock.advance(timedelta(hours=1))
    assert await services.safeguarding.escalate_due(sessionmaker) == 1
    restarted = SafeguardingService(services.settings, clock, services.audit, services.holds, services.erase_dates)
    assert await restarted.escalate_due(sessionmaker) == 0
    async with sessionmaker() as s:
        mails = (await s.execute(select(OutboxMessage.recipient).where(
            OutboxMessage.kind == "staff_alert", OutboxMessage.message_key.contains(".overdue.")))).scalars().all()
        escalated = (await s.execute(select(AuditEvent).where(AuditEvent.action == "concern.escalated"))
                     ).scalar_one()
    assert sorted(mails) == ["manager@school.example.org", "safeguarding@school.example.org"]
    assert escalated.target == f"concern:{late['id']}"
    _, seen = await people.get("safeguarding", f"/api/v1/concerns/{late['id']}")
    assert seen["escalated_at"] is not None and seen["discussed_at"] is None


async def test_the_head_of_service_is_told_of_an_escalated_concern_without_its_details(
        people: People, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    head = await add_staff(services, sessionmaker, "head", frozenset({Role.HEAD_OF_SERVICE}))
    both = await add_staff(services, sessionmaker, "deputy", frozenset({Role.MANAGER, Role.HEAD_OF_SERVICE}))
    _, concern = await people.post("tutor", "/api/v1/concerns", CONCERN)
    clock.advance(timedelta(hours=24))
    assert await services.safeguarding.escalate_due(sessionmaker) == 1
    async with sessionmaker() as s:
        mails = {m.recipient: message_from_bytes(m.body, policy=default) for m in (await s.execute(
            select(OutboxMessage).where(OutboxMessage.kind == "staff_alert",
                                        OutboxMessage.message_key.contains(".overdue.")))).scalars()}
        escalated = (await s.execute(select(AuditEvent).where(AuditEvent.action == "concern.escalated"))
                     ).scalar_one()
    # Each person once: the deputy, a manager too, gets the managers' email with the category.
    assert sorted(mails) == ["deputy@school.example.org", "head@school.example.org", "manager@school.example.org",
                             "safeguarding@school.example.org"]
    assert set(json.loads(escalated.details)["recipients"]) == {
        f"staff:{i}" for i in (org.manager_id, org.safeguarding_id, head, both)}

    def text(recipient: str) -> str:
        plain = mails[recipient].get_body(("plain",))
        assert plain is not None
        return " ".join(plain.get_content().split())

    assert f"Concern {concern['id']} (neglect)" in text("deputy@school.example.org")
    assert f"Concern {concern['id']}, raised at" in text("head@school.example.org")
    assert "neglect" not in text("head@school.example.org").lower()  # need-to-know (policies/004_*)
    assert CONCERN["details"] not in text("head@school.example.org")
    status, _ = await people.get("head", f"/api/v1/concerns/{concern['id']}")
    assert status == 404  # the role does not open concerns


async def test_a_new_concern_reaches_the_leads_at_once_and_an_allegation_against_staff_the_head_too(
        people: People, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    head = await add_staff(services, sessionmaker, "head", frozenset({Role.HEAD_OF_SERVICE}))

    async def told(concern_id: int) -> dict[str, str]:
        async with sessionmaker() as s:
            rows = (await s.execute(select(OutboxMessage).where(
                OutboxMessage.message_key.startswith(f"concern-{concern_id}.raised.")))).scalars().all()
        return {m.recipient: " ".join(str(message_from_bytes(m.body, policy=default)  # type: ignore[union-attr]
                                          .get_body(("plain",)).get_content()).split()) for m in rows}

    _, neglect = await people.post("tutor", "/api/v1/concerns", CONCERN)
    assert sorted(await told(neglect["id"])) == ["manager@school.example.org", "safeguarding@school.example.org"]
    _, allegation = await people.post("tutor", "/api/v1/concerns", CONCERN | {"category": "allegation_against_staff"})
    mails = await told(allegation["id"])
    assert sorted(mails) == ["head@school.example.org", "manager@school.example.org",
                             "safeguarding@school.example.org"]
    assert "allegation against a member of staff" in mails["head@school.example.org"]
    assert CONCERN["details"] not in mails["head@school.example.org"]  # need-to-know (policies/004_*)
    async with sessionmaker() as s:
        notified = (await s.execute(select(AuditEvent).where(
            AuditEvent.action == "concern.notified", AuditEvent.target == f"concern:{allegation['id']}"))).scalar_one()
    assert f"staff:{head}" in json.loads(notified.details)["recipients"]


async def test_a_concern_places_and_lifts_a_hold_on_recordings(
        people: People, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    _, concern = await people.post("tutor", "/api/v1/concerns", CONCERN | {"booking_id": org.booking_id})
    status, _ = await people.post("manager", f"/api/v1/concerns/{concern['id']}/holds", {"reason": "evidence"})
    assert status == 403  # the safeguarding lead places holds
    status, hold = await people.post("safeguarding", f"/api/v1/concerns/{concern['id']}/holds",
                                     {"reason": "keep the session recording as evidence"})
    assert status == 201 and hold["booking_id"] == org.booking_id
    async with sessionmaker() as s:
        assert await Holds.held(s, org.booking_id, org.child_id)
    status, lifted = await people.post("safeguarding", f"/api/v1/holds/{hold['id']}/lift",
                                       {"reason": "case closed by the local authority"})
    assert status == 200 and lifted["lifted_at"] is not None
    async with sessionmaker() as s:
        assert not await Holds.held(s, org.booking_id, org.child_id)
        actions = (await s.execute(select(AuditEvent.action).where(AuditEvent.target == f"concern:{concern['id']}"))
                   ).scalars().all()
    assert {"concern.raised", "recording.hold_placed", "recording.hold_lifted"} <= set(actions)


async def test_a_parent_uses_the_concern_page_from_their_link(
        browser: Browser, live_server: str, org: Org, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto(f"{live_server}/l/{token}")
    await page.goto(f"{live_server}/s/{org.booking_id}/concern")
    await page.get_by_test_id("concern-category").select_option("home_visit_issue")
    await page.get_by_test_id("concern-details").fill("The tutor asked my son to move to his bedroom.")
    await page.get_by_test_id("concern-submit").click()
    await expect(page.get_by_test_id("concern-receipt")).to_contain_text("safeguarding lead")
    async with sessionmaker() as s:
        concern = (await s.execute(select(Concern))).scalar_one()
    assert concern.category == "home_visit_issue" and concern.raised_by == f"guardian:{org.guardian_id}"
    await context.close()
