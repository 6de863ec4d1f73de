"""The recording gate: may this session be recorded right now? A pure function of who is present.

Everyone who can be seen or heard (publishing audio or video) must hold recording consent on the session
day; an observer publishing nothing does not close the gate. The answer carries every reason in plain
words, so the practitioner sees exactly whose consent is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from server.consent.rules import Facts, holds

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from server.consent.services import ConsentService


@dataclass(frozen=True)
class Presence:
    """One person in the session: who they are and whether anything of theirs is sent to the room."""

    subject: str  # "staff:1", "guardian:3", "client:4"
    publishing: bool


@dataclass(frozen=True)
class GateDecision:
    open: bool
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def evaluate(present: Iterable[Presence], facts: Facts, day: date) -> GateDecision:
    """Open only if every publishing person holds recording consent on ``day``; else closed, with reasons."""
    reasons: list[str] = []
    seen: set[str] = set()
    for person in present:
        if not person.publishing or person.subject in seen:
            continue
        seen.add(person.subject)
        reason = holds(facts, person.subject, day, "record")
        if reason is not None:
            reasons.append(reason)
    return GateDecision(open=not reasons, reasons=tuple(reasons))


def presence_of(subject: str, publishing: Mapping[str, bool], muted: Mapping[str, bool]) -> Presence:
    """A hub member (``Member.publishing``/``Member.muted``) as the gate sees them: seen or heard only when a
    published track is not muted, so a muted guardian who unmutes re-opens the question."""
    return Presence(subject, any(on and not muted.get(kind, False) for kind, on in publishing.items()))


async def decide(consent: ConsentService, session: AsyncSession, present: Iterable[Presence],
                 day: date) -> GateDecision:
    """Read the consents of the people present from the database, then ``evaluate``."""
    people = list(present)
    facts = await consent.facts(session, {p.subject for p in people if p.publishing})
    return evaluate(people, facts, day)
