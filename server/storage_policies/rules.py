"""Choose the purpose a recording is held for, and compute the day it may be erased.

Pure functions over explicit dates (no clock): the erasure job (``server.retention``'s DB side) stores
the result with the recording and RECOMPUTES it whenever a fact changes: a new session with the client
moves ``last_session_date`` (and so the end of treatment) later, a safeguarding flag switches the purpose,
a corrected date of birth moves birthday-based dates. Holds are deliberately not part of the date: the job
skips held recordings whatever their date, and lifting a hold needs no recomputation.

Calendar conventions (conservative: when in doubt, keep a little longer, never erase early):

* A date that does not exist after adding years or months (29 February in a common year, 31 April)
  rolls forward to the 1st of the next month. For a client born on 29 February this makes the Nth
  birthday in a common year 1 March, the date on which the person is usually taken to attain an age in
  England and Wales (Family Law Reform Act 1969 s. 9: an age is attained at the start of the anniversary).
* The erase date is the first day on which erasure is allowed: "28 days after a session on 1 March" is
  29 March, "until the 25th birthday" is the 25th birthday itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from server.dates import add_period, age_on
from server.errors import InvalidInput
from server.storage_policies.models import (
    AgeBand,
    Anchor,
    Period,
    Policy,
    PolicySet,
    ProvisionType,
    RecordingKind,
)


@dataclass(frozen=True)
class RecordingFacts:
    """What retention depends on, for one recording.

    ``last_session_date`` is the client's most recent (or final) session with the same service for the
    same kind of work: for therapy, the end of treatment so far. It is never before ``session_date``.
    """

    kind: RecordingKind
    provision: ProvisionType
    session_date: date
    client_birth_date: date
    last_session_date: date
    flagged_for_safeguarding: bool = False

    def __post_init__(self) -> None:
        if self.client_birth_date > self.session_date:
            raise InvalidInput(
                "the client's date of birth is after the session date", field="client_birth_date"
            )
        if self.last_session_date < self.session_date:
            raise InvalidInput(
                "the client's last session cannot be before this recorded session", field="last_session_date"
            )

    @property
    def age_band(self) -> AgeBand:
        """Under 18 or not on the day of the session (policies/000_*: consent by guardian under 18)."""
        return AgeBand.ADULT if age_on(self.client_birth_date, self.session_date) >= 18 else AgeBand.UNDER_18


def birthday(birth: date, age: int) -> date:
    """The day the client turns ``age`` (29 February birthdays fall on 1 March in common years)."""
    return add_period(birth, years=age)


def choose_policy(policies: PolicySet, facts: RecordingFacts) -> Policy:
    """The purpose a recording is held for: the highest-priority matching policy.

    The loader guarantees exactly one policy wins for every combination (safeguarding holds have the
    highest priority), so this never guesses.
    """
    found = policies.matching(facts.kind, facts.age_band, facts.provision, facts.flagged_for_safeguarding)
    if not found:  # only possible with a PolicySet built without the loader's coverage check
        raise InvalidInput(
            f"no retention policy covers a {facts.kind.value} recording of a "
            f"{facts.age_band.value} client ({facts.provision.value})"
        )
    return found[0]


def period_end(period: Period, facts: RecordingFacts) -> date | None:
    """The end of one period, or None when its age condition does not hold for this client."""
    age_condition = period.when_age_at_last_session
    if (
        age_condition is not None
        and age_on(facts.client_birth_date, facts.last_session_date) != age_condition
    ):
        return None
    anchor = {
        Anchor.SESSION: facts.session_date,
        Anchor.LAST_SESSION: facts.last_session_date,
        Anchor.BIRTH: facts.client_birth_date,
    }[period.after]
    return add_period(anchor, period.years, period.months, period.days)


def erase_date(policy: Policy, facts: RecordingFacts) -> date | None:
    """The first day the recording may be erased (or reviewed, if ``policy.retention.at_end`` says so).

    The latest end among the periods that apply. Returns None only if no period applies, which the loader
    prevents (every rule has at least one unconditional period): callers treat None as "keep".
    """
    ends = [end for p in policy.retention.keep_until_latest_of if (end := period_end(p, facts)) is not None]
    return max(ends) if ends else None
