"""Who may consent for whom, and whether a person holds recording consent on a given day: pure functions.

The same rules serve the consent page (may this link holder consent?) and the recording gate (does everyone
who can be seen or heard hold consent today?), so the two can never disagree. Age is taken on the session
day: guardian consent for a client lapses on the client's 18th birthday, and from then the adult's own
consent is needed. A guardian without parental responsibility cannot consent for a client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from server.consent.models import Capacity
from server.dates import age_on
from server.subjects import Subject


@dataclass(frozen=True)
class PersonFacts:
    """What the rules need to know about one person, gathered from the database by the service."""

    subject: str  # "client:4", "guardian:3", "staff:1"
    name: str  # full name, for messages to staff
    first_name: str
    date_of_birth: date | None = None  # clients only
    pr_for: frozenset[int] = frozenset()  # guardians: client ids they hold parental responsibility for
    recording_agreement_on: date | None = None  # staff only


@dataclass(frozen=True)
class ConsentFact:
    """A consent in force (the latest row for its pair, not withdrawn)."""

    covers: str
    given_by: str
    capacity: Capacity
    scopes: frozenset[str]


@dataclass(frozen=True)
class Facts:
    people: dict[str, PersonFacts]
    consents: tuple[ConsentFact, ...] = ()
    guardians_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # client subject -> PR guardians


def _id(subject: str) -> int:
    return Subject(subject).id


def capacity_for(giver: PersonFacts, covered: PersonFacts, day: date) -> Capacity | str:
    """The capacity in which ``giver`` may consent for ``covered`` on ``day``, or the reason they may not."""
    if giver.subject == covered.subject:
        if Subject(covered.subject).kind == "guardian":
            return Capacity.GUARDIAN_SELF
        if Subject(covered.subject).kind == "client" and covered.date_of_birth is not None:
            if age_on(covered.date_of_birth, day) >= 18:
                return Capacity.SELF_ADULT
            return (f"{covered.first_name} is under 18 on {day.isoformat()}: a parent or guardian with "
                    f"parental responsibility gives consent")
        return "Only clients and guardians give consent here; staff sign a recording agreement."
    if Subject(giver.subject).kind == "guardian" and Subject(covered.subject).kind == "client":
        if covered.date_of_birth is not None and age_on(covered.date_of_birth, day) >= 18:
            return (f"{covered.first_name} is 18 or over on {day.isoformat()}, so only "
                    f"{covered.first_name} can consent now")
        if _id(covered.subject) not in giver.pr_for:
            return (f"{giver.name} does not hold parental responsibility for {covered.first_name}, "
                    f"so cannot consent for them")
        return Capacity.GUARDIAN_PR
    return f"{giver.name} cannot consent for {covered.name}."


def holds(facts: Facts, subject: str, day: date, scope: str = "record") -> str | None:
    """None when ``subject`` holds consent for ``scope`` on ``day``; otherwise the reason in plain words."""
    person = facts.people.get(subject)
    if person is None:
        return f"no recording consent for an unknown participant ({subject})"
    if Subject(subject).kind == "staff":
        if person.recording_agreement_on is None or person.recording_agreement_on > day:
            return f"no staff recording agreement for {person.name}"
        return None
    for consent in facts.consents:
        if consent.covers != subject or scope not in consent.scopes:
            continue
        giver = facts.people.get(consent.given_by)
        if giver is not None and capacity_for(giver, person, day) == consent.capacity:
            return None
    if Subject(subject).kind == "client" and person.date_of_birth is not None:
        if age_on(person.date_of_birth, day) >= 18:
            lapsed = any(c.covers == subject and c.capacity == Capacity.GUARDIAN_PR for c in facts.consents)
            if lapsed:
                return (f"no recording consent from {person.first_name}: their guardian's consent "
                        f"lapsed on their 18th birthday")
            return f"no recording consent from {person.first_name}"
        return f"no recording consent for {person.first_name}'s guardian"
    return f"no recording consent from {person.name}"
