"""The consent matrix and the recording gate as pure functions: who may consent, and who holds consent."""

from __future__ import annotations

from datetime import date

from server.consent.models import Capacity
from server.consent.rules import ConsentFact, Facts, PersonFacts, capacity_for, holds
from server.recording.gate import Presence, evaluate

DAY = date(2026, 11, 23)
KIT = PersonFacts("client:1", "Kit Child", "Kit", date_of_birth=date(2016, 3, 1))
SAM = PersonFacts("client:2", "Sam Adult", "Sam", date_of_birth=date(1990, 3, 1))
TEEN = PersonFacts("client:3", "Tia Teen", "Tia", date_of_birth=date(2008, 11, 24))  # 18 tomorrow
GAIL = PersonFacts("guardian:1", "Gail Guardian", "Gail", pr_for=frozenset({1, 3}))
STEP = PersonFacts("guardian:2", "Stef Step", "Stef", pr_for=frozenset())  # linked without PR
TUTOR = PersonFacts("staff:1", "Tutor Person", "Tutor", recording_agreement_on=date(2026, 1, 5))
NEW_TUTOR = PersonFacts("staff:2", "New Tutor", "New")
PEOPLE = {p.subject: p for p in (KIT, SAM, TEEN, GAIL, STEP, TUTOR, NEW_TUTOR)}
RECORD = frozenset({"record"})


def facts(*consents: ConsentFact) -> Facts:
    return Facts(people=PEOPLE, consents=consents)


def test_who_may_consent_for_whom_on_the_session_day() -> None:
    assert capacity_for(GAIL, KIT, DAY) == Capacity.GUARDIAN_PR
    assert capacity_for(GAIL, GAIL, DAY) == Capacity.GUARDIAN_SELF
    assert capacity_for(SAM, SAM, DAY) == Capacity.SELF_ADULT
    assert "parental responsibility" in str(capacity_for(STEP, KIT, DAY))
    assert "under 18" in str(capacity_for(KIT, KIT, DAY))
    assert capacity_for(GAIL, TEEN, DAY) == Capacity.GUARDIAN_PR
    assert "only Tia can consent" in str(capacity_for(GAIL, TEEN, date(2026, 11, 24)))  # the 18th birthday


def test_child_with_guardian_consent_holds_and_child_without_does_not() -> None:
    given = ConsentFact("client:1", "guardian:1", Capacity.GUARDIAN_PR, RECORD)
    assert holds(facts(given), "client:1", DAY) is None
    assert holds(facts(), "client:1", DAY) == "no recording consent for Kit's guardian"
    only_feedback = ConsentFact("client:1", "guardian:1", Capacity.GUARDIAN_PR, frozenset({"feedback"}))
    assert holds(facts(only_feedback), "client:1", DAY) == "no recording consent for Kit's guardian"


def test_adult_needs_their_own_consent_and_a_guardians_lapses_at_18() -> None:
    assert holds(facts(ConsentFact("client:2", "client:2", Capacity.SELF_ADULT, RECORD)), "client:2", DAY) is None
    assert holds(facts(), "client:2", DAY) == "no recording consent from Sam"
    by_guardian = facts(ConsentFact("client:3", "guardian:1", Capacity.GUARDIAN_PR, RECORD))
    assert holds(by_guardian, "client:3", DAY) is None
    assert holds(by_guardian, "client:3", date(2026, 11, 24)) == (
        "no recording consent from Tia: their guardian's consent lapsed on their 18th birthday")


def test_a_consent_from_someone_without_parental_responsibility_does_not_count() -> None:
    assert holds(facts(ConsentFact("client:1", "guardian:2", Capacity.GUARDIAN_PR, RECORD)), "client:1", DAY)


def test_staff_need_a_signed_recording_agreement() -> None:
    assert holds(facts(), "staff:1", DAY) is None
    assert holds(facts(), "staff:1", date(2026, 1, 4)) == "no staff recording agreement for Tutor Person"
    assert holds(facts(), "staff:2", DAY) == "no staff recording agreement for New Tutor"


def test_the_gate_opens_only_when_every_publisher_holds_consent() -> None:
    kit = ConsentFact("client:1", "guardian:1", Capacity.GUARDIAN_PR, RECORD)
    gail = ConsentFact("guardian:1", "guardian:1", Capacity.GUARDIAN_SELF, RECORD)
    present = [Presence("staff:1", True), Presence("client:1", True), Presence("guardian:1", True)]
    assert evaluate(present, facts(kit, gail), DAY).open
    closed = evaluate(present, facts(kit), DAY)
    assert not closed.open and closed.reason == "no recording consent from Gail Guardian"
    # a second adult without consent joins, publishing: closed; they leave: open again
    assert evaluate(present + [Presence("client:2", True)], facts(kit, gail), DAY).reasons == (
        "no recording consent from Sam",)
    # an observer who publishes nothing does not close it
    assert evaluate(present + [Presence("staff:2", False)], facts(kit, gail), DAY).open
    # nor does an unknown person who publishes nothing; one who publishes does
    assert not evaluate([Presence("guardian:99", True)], facts(), DAY).open
