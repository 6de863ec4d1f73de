"""Consent through a family's link and on paper: rows are appended, never overwritten, every change audited,
and the recording gate over the stored consents follows them (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.consent.models import ConsentRecord
from server.links.models import LinkPurpose
from server.people.models import Client, Guardian
from server.people.services import NewClient, NewGuardian
from server.recording.gate import Presence, evaluate
from server.services import Services
from tests.support.org import SETUP, Org, issue_link

ALL = {"record": True, "safeguarding": True, "feedback": True}


async def _open_link(client: TestClient, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
                     booking_id: int, subject: str) -> str:
    token = await issue_link(services, sessionmaker, booking_id, subject, LinkPurpose.CONSENT)
    opened = await client.get(f"/l/{token}", allow_redirects=False)
    assert opened.status == 303 and opened.headers["Location"] == f"/s/{booking_id}/consent"
    context = await (await client.get(f"/s/{booking_id}/api/context")).json()
    return str(context["csrf_token"])


async def _gate(services: Services, sessionmaker: async_sessionmaker[AsyncSession], day: date,
                *subjects: str) -> Any:
    async with sessionmaker() as s:
        facts = await services.consent.facts(s, subjects)
    return evaluate([Presence(subject, True) for subject in subjects], facts, day)


async def test_a_guardian_consents_through_the_link_then_withdraws_and_history_is_kept(
        client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
        clock: FakeClock) -> None:
    csrf = await _open_link(client, services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    day = clock.now().date()
    state = await (await client.get(f"/s/{org.booking_id}/api/consent")).json()
    headings = [s["heading"] for s in state["notice"]]
    assert headings[:4] == ["What is recorded", "Where it is kept", "Who can see it", "How long it is kept"]
    assert "25th birthday" in state["notice"][3]["text"]  # from storage_policies/therapy_children.toml
    assert [(s["covers"], s["may_consent"], s["scopes"]) for s in state["subjects"]] == [
        (f"client:{org.child_id}", True, []), (f"guardian:{org.guardian_id}", True, [])], state["subjects"]
    child = f"client:{org.child_id}"
    assert not (await _gate(services, sessionmaker, day, child)).open

    response = await client.post(f"/s/{org.booking_id}/api/consent", json={"covers": child} | ALL,
                                 headers={"X-CSRF-Token": csrf})
    assert response.status == 201, await response.text()
    given = await response.json()
    assert given["capacity"] == "guardian_pr" and given["method"] == "online"
    assert given["notice_version"] == state["notice_version"]
    assert (await _gate(services, sessionmaker, day, child)).open

    response = await client.post(f"/s/{org.booking_id}/api/consent",
                                 json={"covers": child, "record": False, "safeguarding": True, "feedback": False},
                                 headers={"X-CSRF-Token": csrf})
    assert response.status == 201
    closed = await _gate(services, sessionmaker, day, child)
    assert closed.reasons == ("no recording consent for Kit's guardian",)

    response = await client.post(f"/s/{org.booking_id}/api/consent/withdraw", json={"covers": child},
                                 headers={"X-CSRF-Token": csrf})
    assert response.status == 200 and (await response.json())["withdrawn_at"] is not None
    again = await client.post(f"/s/{org.booking_id}/api/consent/withdraw", json={"covers": child},
                              headers={"X-CSRF-Token": csrf})
    assert again.status == 404

    async with sessionmaker() as s:
        rows = (await s.scalars(select(ConsentRecord).order_by(ConsentRecord.id))).all()
        actions = (await s.scalars(select(AuditEvent.action).where(AuditEvent.target == child,
                                                                   AuditEvent.action.like("consent.%"))
                                   .order_by(AuditEvent.seq))).all()
    assert [sorted(r.scopes) for r in rows] == [["feedback", "record", "safeguarding"], ["safeguarding"], []]
    assert list(actions) == ["consent.given", "consent.changed", "consent.withdrawn"]
    no_csrf = await client.post(f"/s/{org.booking_id}/api/consent", json={"covers": child} | ALL)
    assert no_csrf.status == 403


async def test_a_guardian_without_parental_responsibility_cannot_consent_for_the_child(
        client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as s:
        step = await services.people.add_guardian(s, SETUP, NewGuardian(name="Stef Step",
                                                                        email="stef@family.example.org"))
        child = await s.get(Client, org.child_id)
        assert child is not None
        await services.people.link(s, SETUP, child, step, parental_responsibility=False, account_holder=False)
        await s.commit()
        step_id = step.id
    csrf = await _open_link(client, services, sessionmaker, org.booking_id, f"guardian:{step_id}")
    state = await (await client.get(f"/s/{org.booking_id}/api/consent")).json()
    assert state["subjects"][0]["may_consent"] is False
    assert "does not hold parental responsibility" in state["subjects"][0]["why_not"]
    response = await client.post(f"/s/{org.booking_id}/api/consent",
                                 json={"covers": f"client:{org.child_id}"} | ALL, headers={"X-CSRF-Token": csrf})
    assert response.status == 409  # PolicyViolation
    assert "parental responsibility" in (await response.json())["detail"]
    async with sessionmaker() as s:
        assert (await s.scalars(select(ConsentRecord))).all() == []


async def test_guardian_consent_lapses_on_the_18th_birthday_and_paper_consent_from_the_adult_counts(
        client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
        clock: FakeClock, login: Any) -> None:
    today = clock.now().date()
    async with sessionmaker() as s:
        teen = await services.people.add_client(s, SETUP, NewClient(
            first_name="Tia", last_name="Teen", date_of_birth=date(today.year - 18, today.month, today.day)
            + timedelta(days=1)))
        gail = await s.get(Guardian, org.guardian_id)
        assert gail is not None
        await services.people.link(s, SETUP, teen, gail, parental_responsibility=True, account_holder=True)
        await s.commit()
        subject = f"client:{teen.id}"
    csrf = await login("admin")
    paper = {"covers": subject, "given_by": f"guardian:{org.guardian_id}", "reference": "FORM-0042"} | ALL
    response = await client.post("/api/v1/consents", json=paper, headers={"X-CSRF-Token": csrf})
    assert response.status == 201, await response.text()
    assert (await response.json())["paper_reference"] == "FORM-0042"
    assert (await _gate(services, sessionmaker, today, subject)).open
    birthday = today + timedelta(days=1)
    lapsed = await _gate(services, sessionmaker, birthday, subject)
    assert lapsed.reasons == (
        "no recording consent from Tia: their guardian's consent lapsed on their 18th birthday",)

    clock.set(clock.now() + timedelta(days=1))
    csrf = await login("admin")  # a day later: a fresh sign-in
    late = await client.post("/api/v1/consents", json=paper, headers={"X-CSRF-Token": csrf})
    assert late.status != 201 and "only Tia can consent" in (await late.json())["detail"]
    own = paper | {"given_by": subject, "reference": "FORM-0043"}
    response = await client.post("/api/v1/consents", json=own, headers={"X-CSRF-Token": csrf})
    assert response.status == 201 and (await response.json())["capacity"] == "self_adult"
    assert (await _gate(services, sessionmaker, birthday, subject)).open
    history = await (await client.get(f"/api/v1/consents?covers={subject}")).json()
    assert [(h["given_by"], h["method"]) for h in history] == [
        (f"guardian:{org.guardian_id}", "paper"), (subject, "paper")]


async def test_the_staff_recording_agreement_is_recorded_and_audited(
        client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
        clock: FakeClock, login: Any) -> None:
    today = clock.now().date()
    tutor = f"staff:{org.tutor_id}"
    assert (await _gate(services, sessionmaker, today, tutor)).reasons == (
        "no staff recording agreement for Tutor Person",)
    csrf = await login("manager")
    response = await client.post(f"/api/v1/staff/{org.tutor_id}/recording-agreement",
                                 json={"signed_on": today.isoformat()}, headers={"X-CSRF-Token": csrf})
    assert response.status == 200, await response.text()
    assert (await _gate(services, sessionmaker, today, tutor)).open
    async with sessionmaker() as s:
        event = (await s.scalars(select(AuditEvent).where(AuditEvent.action == "staff.recording_agreement"))).one()
    assert event.target == tutor and event.actor == f"staff:{org.manager_id}"
