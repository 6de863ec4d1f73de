"""Each shipped policy gives the erase date a records manager would compute by hand."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from server.dates import add_period, age_on
from server.errors import InvalidInput
from server.storage_policies import RecordingFacts, choose_policy, erase_date, load_policies
from server.storage_policies.models import (
    AgeBand,
    AtEnd,
    PolicySet,
    ProvisionType,
    RecordingKind,
)
from server.storage_policies.rules import birthday

SHIPPED = Path(__file__).resolve().parents[2] / "storage_policies"


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(SHIPPED)


def facts(
    kind: str = "tuition",
    *,
    session: date,
    born: date,
    last: date | None = None,
    flagged: bool = False,
    provision: str = "blended",
) -> RecordingFacts:
    return RecordingFacts(
        RecordingKind(kind), ProvisionType(provision), session, born, last or session, flagged
    )


def test_tuition_recording_is_erased_28_days_after_the_session(policies: PolicySet) -> None:
    f = facts(session=date(2026, 3, 1), born=date(2014, 6, 2), last=date(2026, 7, 1))
    policy = choose_policy(policies, f)
    assert policy.id == "tuition-monitoring"
    assert policy.retention.at_end is AtEnd.ERASE
    # 1 March + 28 days = 29 March, whatever later lessons the pupil has.
    assert erase_date(policy, f) == date(2026, 3, 29)


def test_tuition_of_an_adult_uses_the_same_28_days(policies: PolicySet) -> None:
    f = facts(session=date(2026, 12, 20), born=date(1970, 1, 1), provision="home_visit")
    assert choose_policy(policies, f).id == "tuition-monitoring"
    assert erase_date(choose_policy(policies, f), f) == date(2027, 1, 17)


def test_child_therapy_is_kept_until_the_25th_birthday(policies: PolicySet) -> None:
    # Aged 9 at the session, treatment ended at 11: 25th birthday (2042) beats last session + 8 (2036).
    f = facts("therapy", session=date(2026, 5, 10), born=date(2017, 4, 3), last=date(2028, 9, 1))
    policy = choose_policy(policies, f)
    assert policy.id == "therapy-children"
    assert erase_date(policy, f) == date(2042, 4, 3)


def test_child_aged_17_at_end_of_treatment_is_kept_until_the_26th_birthday(policies: PolicySet) -> None:
    # Born 2009-08-15; last session 2027-01-10 at age 17. 26th birthday 2035-08-15 beats
    # last session + 8 years (2035-01-10) and the 25th birthday (2034-08-15).
    f = facts("therapy", session=date(2026, 6, 1), born=date(2009, 8, 15), last=date(2027, 1, 10))
    assert erase_date(choose_policy(policies, f), f) == date(2035, 8, 15)


def test_child_aged_16_at_end_of_treatment_keeps_the_25th_birthday_rule(policies: PolicySet) -> None:
    # Last session at 16 (before the 17th birthday 2026-08-15): 25th birthday 2034-08-15 beats
    # last session + 8 years (2034-08-14).
    f = facts("therapy", session=date(2026, 6, 1), born=date(2009, 8, 15), last=date(2026, 8, 14))
    assert erase_date(choose_policy(policies, f), f) == date(2034, 8, 15)


def test_child_whose_treatment_continued_into_adulthood_gets_8_years_after_it_ended(
    policies: PolicySet,
) -> None:
    # 15 at the recorded session, treatment ended at 21: last session + 8 years (2039) beats
    # the 25th birthday (2035).
    f = facts("therapy", session=date(2026, 2, 1), born=date(2010, 7, 1), last=date(2031, 9, 30))
    policy = choose_policy(policies, f)
    assert policy.id == "therapy-children"  # chosen by age at the session, not today
    assert erase_date(policy, f) == date(2039, 9, 30)


def test_adult_therapy_is_kept_8_years_after_the_last_session(policies: PolicySet) -> None:
    f = facts(
        "therapy",
        session=date(2026, 1, 12),
        born=date(1980, 11, 30),
        last=date(2027, 3, 4),
        provision="setting",
    )
    policy = choose_policy(policies, f)
    assert policy.id == "therapy-adults"
    assert erase_date(policy, f) == date(2035, 3, 4)


def test_a_new_session_moves_the_therapy_erase_date(policies: PolicySet) -> None:
    before = facts("therapy", session=date(2026, 1, 12), born=date(1980, 1, 1), last=date(2026, 1, 12))
    after = facts("therapy", session=date(2026, 1, 12), born=date(1980, 1, 1), last=date(2026, 6, 1))
    p = choose_policy(policies, before)
    assert erase_date(p, before) == date(2034, 1, 12)
    assert erase_date(p, after) == date(2034, 6, 1)


def test_flag_moves_any_recording_to_safeguarding_dob_plus_25_then_review(policies: PolicySet) -> None:
    f = facts(session=date(2026, 3, 1), born=date(2014, 6, 2), flagged=True)
    policy = choose_policy(policies, f)
    assert policy.id == "safeguarding-concern"
    assert policy.retention.at_end is AtEnd.REVIEW
    assert erase_date(policy, f) == date(2039, 6, 2)


def test_flagged_adult_is_never_kept_less_than_8_years_after_last_session(policies: PolicySet) -> None:
    f = facts("therapy", session=date(2026, 3, 1), born=date(1960, 6, 2), last=date(2026, 4, 1), flagged=True)
    policy = choose_policy(policies, f)
    assert policy.id == "safeguarding-concern"
    assert erase_date(policy, f) == date(2034, 4, 1)


def test_client_turning_18_on_the_session_day_is_an_adult(policies: PolicySet) -> None:
    f = facts("therapy", session=date(2026, 5, 10), born=date(2008, 5, 10))
    assert f.age_band is AgeBand.ADULT
    assert choose_policy(policies, f).id == "therapy-adults"
    g = facts("therapy", session=date(2026, 5, 9), born=date(2008, 5, 10))
    assert g.age_band is AgeBand.UNDER_18


def test_leap_day_birthday_falls_on_1_march_in_common_years(policies: PolicySet) -> None:
    born = date(2012, 2, 29)
    assert birthday(born, 25) == date(2037, 3, 1)  # 2037 is a common year
    assert birthday(born, 28) == date(2040, 2, 29)  # 2040 is a leap year
    assert age_on(born, date(2030, 2, 28)) == 17
    assert age_on(born, date(2030, 3, 1)) == 18
    f = facts("therapy", session=date(2026, 1, 5), born=born, last=date(2026, 1, 5))
    assert erase_date(choose_policy(policies, f), f) == date(2037, 3, 1)


def test_leap_day_client_17_at_end_of_treatment_until_26th_birthday(policies: PolicySet) -> None:
    born = date(2012, 2, 29)
    # 28 Feb 2030 is the day before the 18th birthday (1 March 2030): still 17.
    f = facts("therapy", session=date(2026, 1, 5), born=born, last=date(2030, 2, 28))
    assert erase_date(choose_policy(policies, f), f) == date(2038, 3, 1)


def test_periods_from_a_missing_day_roll_forward_never_back() -> None:
    assert add_period(date(2028, 2, 29), years=1) == date(2029, 3, 1)
    assert add_period(date(2026, 1, 31), months=1) == date(2026, 3, 1)
    assert add_period(date(2026, 12, 31), months=2) == date(2027, 3, 1)  # "31 Feb" -> 1 March
    assert add_period(date(2026, 11, 30), months=1, days=2) == date(2027, 1, 1)
    assert add_period(date(2026, 12, 15), months=13) == date(2028, 1, 15)


@pytest.mark.parametrize(
    ("born", "session", "last", "field"),
    [
        (date(2027, 1, 1), date(2026, 1, 1), date(2026, 1, 1), "client_birth_date"),
        (date(2010, 1, 1), date(2026, 5, 1), date(2026, 4, 30), "last_session_date"),
    ],
)
def test_impossible_facts_are_refused(born: date, session: date, last: date, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        facts("therapy", session=session, born=born, last=last)
    assert err.value.field == field
