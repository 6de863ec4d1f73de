"""Give, change and withdraw consent; the staff recording agreement; the facts the recording gate reads.

Every change is a new ``ConsentRecord`` row and an audit event in the same transaction (the caller
commits). Who may consent is checked with ``server.consent.rules`` on the day given by the caller: the
session day for a consent link, today for paper forms entered by staff.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Staff
from server.audit.log import Actor, AuditLog
from server.clock import Clock
from server.consent.models import Capacity, ConsentRecord, Method
from server.consent.notice import PrivacyNotice
from server.consent.rules import ConsentFact, Facts, PersonFacts, capacity_for
from server.errors import InvalidInput, NotFound, PolicyViolation
from server.events import ConsentChanged, Events
from server.people.models import Client, Guardian, GuardianLink
from server.subjects import Subject

SCOPES = ("record", "safeguarding", "feedback")


@dataclass(frozen=True)
class Grant:
    """What the person agreed to, and how."""

    record: bool
    safeguarding: bool
    feedback: bool
    method: Method = Method.ONLINE
    link_id: int | None = None
    entered_by_id: int | None = None
    paper_reference: str | None = None


class ConsentService:
    def __init__(self, clock: Clock, audit: AuditLog, organisation: str, policies_dir: Path,
                 events: Events | None = None) -> None:
        self._events = events or Events()  # a change re-checks the recording gate of every live session
        self._clock = clock
        self._audit = audit
        self._organisation = organisation
        self._policies_dir = policies_dir
        self._notice: PrivacyNotice | None = None

    @property
    def notice(self) -> PrivacyNotice:
        """Built on first use, so a process that never shows it does not need the policy files."""
        if self._notice is None:
            self._notice = PrivacyNotice.build(self._organisation, self._policies_dir)
        return self._notice

    # ---- facts -----------------------------------------------------------------
    async def person(self, session: AsyncSession, subject: str) -> PersonFacts:
        who = Subject.parse(subject)
        if who is None:
            raise InvalidInput(f"{subject!r} is not a person reference like client:4 or guardian:3.")
        kind, ident = who.kind, who.id
        if kind == "client":
            client = await session.get(Client, ident)
            if client is None:
                raise NotFound(f"There is no client {ident}.")
            return PersonFacts(subject, client.name, client.first_name, date_of_birth=client.date_of_birth)
        if kind == "guardian":
            guardian = await session.get(Guardian, ident)
            if guardian is None:
                raise NotFound(f"There is no guardian {ident}.")
            pr = frozenset((await session.scalars(select(GuardianLink.client_id).where(
                GuardianLink.guardian_id == ident, GuardianLink.parental_responsibility.is_(True)))).all())
            return PersonFacts(subject, guardian.name, guardian.name.split(" ")[0], pr_for=pr)
        if kind == "staff":
            member = await session.get(Staff, ident)
            if member is None:
                raise NotFound(f"There is no staff member {ident}.")
            return PersonFacts(subject, member.name, member.name.split(" ")[0],
                               recording_agreement_on=member.recording_agreement_on)
        raise InvalidInput(f"{subject!r} is not a person reference like client:4 or guardian:3.")

    async def in_force(self, session: AsyncSession, covers: Iterable[str]) -> list[ConsentRecord]:
        """The latest row of every (covers, given_by) pair that is not a withdrawal."""
        wanted = sorted(set(covers))
        if not wanted:
            return []
        rows = (await session.scalars(select(ConsentRecord).where(ConsentRecord.covers.in_(wanted))
                                      .order_by(ConsentRecord.id))).all()
        latest: dict[tuple[str, str], ConsentRecord] = {}
        for row in rows:
            latest[(row.covers, row.given_by)] = row
        return [row for row in latest.values() if row.in_force]

    async def facts(self, session: AsyncSession, subjects: Iterable[str]) -> Facts:
        """Everything the gate needs about these people: their details, and consents given for them."""
        wanted = set(subjects)
        consents = await self.in_force(session, wanted)
        people: dict[str, PersonFacts] = {}
        for subject in wanted | {c.given_by for c in consents}:
            people[subject] = await self.person(session, subject)
        return Facts(people=people, consents=tuple(
            ConsentFact(c.covers, c.given_by, Capacity(c.capacity), c.scopes) for c in consents))

    async def history(self, session: AsyncSession, covers: str) -> list[ConsentRecord]:
        return list((await session.scalars(select(ConsentRecord).where(ConsentRecord.covers == covers)
                                           .order_by(ConsentRecord.id))).all())

    # ---- changes -----------------------------------------------------------------
    async def give(self, session: AsyncSession, actor: Actor, given_by: str, covers: str, grant: Grant,
                   day: date) -> ConsentRecord:
        """Record a grant or change of scopes, after checking ``given_by`` may consent for ``covers``."""
        giver = await self.person(session, given_by)
        covered = await self.person(session, covers)
        capacity = capacity_for(giver, covered, day)
        if not isinstance(capacity, Capacity):
            raise PolicyViolation(capacity)
        if grant.method == Method.PAPER and not (grant.entered_by_id and grant.paper_reference):
            raise InvalidInput("A paper consent needs the staff member entering it and the form's reference.")
        if not (grant.record or grant.safeguarding or grant.feedback):
            raise InvalidInput("Tick at least one thing you agree to, or use 'Withdraw consent'.")
        previous = await self._latest(session, covers, given_by)
        row = ConsentRecord(
            covers=covers, given_by=given_by, capacity=capacity.value, scope_record=grant.record,
            scope_safeguarding=grant.safeguarding, scope_feedback=grant.feedback,
            notice_version=self.notice.version, method=grant.method.value, link_id=grant.link_id,
            entered_by_id=grant.entered_by_id, paper_reference=grant.paper_reference, given_at=self._clock.now())
        session.add(row)
        await session.flush()
        action = "consent.given" if previous is None or not previous.in_force else "consent.changed"
        await self._audit.record(session, actor, action, covers, {
            "consent_id": row.id, "given_by": given_by, "capacity": capacity.value,
            "scopes": sorted(row.scopes), "previous_scopes": sorted(previous.scopes) if previous else [],
            "notice_version": row.notice_version, "method": row.method, "paper_reference": row.paper_reference,
        })
        self._events.publish(session, ConsentChanged(covers))
        return row

    async def withdraw(self, session: AsyncSession, actor: Actor, given_by: str, covers: str) -> ConsentRecord:
        """Withdraw at once: a new row with no scopes. Earlier rows stay as they were."""
        previous = await self._latest(session, covers, given_by)
        if previous is None or not previous.in_force:
            raise NotFound("There is no consent in force to withdraw.")
        now = self._clock.now()
        row = ConsentRecord(covers=covers, given_by=given_by, capacity=previous.capacity, scope_record=False,
                            scope_safeguarding=False, scope_feedback=False, notice_version=self.notice.version,
                            method=previous.method, link_id=previous.link_id,
                            entered_by_id=previous.entered_by_id, paper_reference=previous.paper_reference,
                            given_at=now, withdrawn_at=now)
        session.add(row)
        await session.flush()
        await self._audit.record(session, actor, "consent.withdrawn", covers, {
            "consent_id": row.id, "given_by": given_by, "withdrew": sorted(previous.scopes)})
        self._events.publish(session, ConsentChanged(covers))
        return row

    async def set_staff_agreement(self, session: AsyncSession, actor: Actor, staff_id: int,
                                  signed_on: date | None) -> Staff:
        """Record (or clear) the date a staff member signed the recording agreement."""
        member = await session.get(Staff, staff_id)
        if member is None:
            raise NotFound(f"There is no staff member {staff_id}.")
        previous = member.recording_agreement_on
        member.recording_agreement_on = signed_on
        await session.flush()
        await self._audit.record(session, actor, "staff.recording_agreement", Subject.staff(staff_id), {
            "signed_on": signed_on.isoformat() if signed_on else None,
            "previous": previous.isoformat() if previous else None})
        self._events.publish(session, ConsentChanged(Subject.staff(staff_id)))
        return member

    async def _latest(self, session: AsyncSession, covers: str, given_by: str) -> ConsentRecord | None:
        return (await session.scalars(
            select(ConsentRecord).where(ConsentRecord.covers == covers, ConsentRecord.given_by == given_by)
            .order_by(ConsentRecord.id.desc()).limit(1))).first()
