"""Retention policies as data: the model of one ``storage_policies/*.toml`` file.

Each file is one purpose of processing (UK GDPR Art. 5(1)(b) purpose limitation, Art. 30 record). The
loader (``server.storage_policies.loader``) turns files into these frozen objects; ``server.storage_policies.rules``
picks the policy for a recording and computes its erase date. Nothing here touches the database, so the
same objects serve start-up validation, the erasure job, the privacy notice and the Art. 30 record.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date


class RecordingKind(enum.StrEnum):
    """What the recorded session was: tuition, or therapy (health data, UK GDPR Art. 9)."""

    TUITION = "tuition"
    THERAPY = "therapy"


class AgeBand(enum.StrEnum):
    """The client's age on the day of the recorded session (the day consent was given for it)."""

    UNDER_18 = "under_18"
    ADULT = "18_and_over"


class ProvisionType(enum.StrEnum):
    """The four provision types of policies/000_* ("Sessions in Settings", home, studio, blended)."""

    SETTING = "setting"
    HOME_VISIT = "home_visit"
    STUDIO_VISIT = "studio_visit"
    BLENDED = "blended"


class Anchor(enum.StrEnum):
    """The fact a retention period is counted from."""

    SESSION = "session"  # the day of the recorded session
    LAST_SESSION = "last_session"  # the client's last session with the service (end of treatment)
    BIRTH = "birth"  # the client's date of birth: years here are birthdays


class AtEnd(enum.StrEnum):
    """What the erasure job does once the erase date has come."""

    ERASE = "erase"  # delete the object and destroy its wrapped key (crypto-shredding)
    REVIEW = "review"  # list it for the safeguarding lead to review; erase only on their decision


@dataclass(frozen=True)
class Period:
    """``years``/``months``/``days`` after an anchor, optionally only for a given age at the last session.

    ``when_age_at_last_session`` implements NHS Records Management Code 2021's "26th birthday if the
    young person was 17 at the conclusion of treatment": the entry counts only when the client's age on
    the last-session date equals it.
    """

    after: Anchor
    years: int = 0
    months: int = 0
    days: int = 0
    when_age_at_last_session: int | None = None

    def describe(self) -> str:
        parts = [
            f"{n} {unit if n == 1 else unit + 's'}"
            for n, unit in ((self.years, "year"), (self.months, "month"), (self.days, "day"))
            if n
        ]
        amount = ", ".join(parts)
        if self.after is Anchor.BIRTH and not self.months and not self.days:
            text = f"the {_ordinal(self.years)} birthday"
        elif self.after is Anchor.BIRTH:
            text = f"{amount} after birth"
        elif self.after is Anchor.SESSION:
            text = f"{amount} after the session"
        else:
            text = f"{amount} after the client's last session"
        if self.when_age_at_last_session is not None:
            text += f" (only if aged {self.when_age_at_last_session} at the last session)"
        return text


@dataclass(frozen=True)
class RetentionRule:
    """Keep until the latest of the applicable periods, then erase or review."""

    keep_until_latest_of: tuple[Period, ...]
    at_end: AtEnd = AtEnd.ERASE

    def describe(self) -> str:
        items = [p.describe() for p in self.keep_until_latest_of]
        text = items[0] if len(items) == 1 else "the latest of: " + "; ".join(items)
        then = (
            "then erased (crypto-shredded)"
            if self.at_end is AtEnd.ERASE
            else "then reviewed by the safeguarding lead"
        )
        return f"kept until {text}; {then}"

    def for_families(self) -> str:
        """The period in the words of the privacy notice in every invitation."""
        items = [p.describe() for p in self.keep_until_latest_of]
        text = items[0] if len(items) == 1 else "the latest of " + ", ".join(items[:-1]) + " and " + items[-1]
        then = "then erased automatically" if self.at_end is AtEnd.ERASE else "then reviewed by our safeguarding lead"
        return f"until {text}, {then}"


@dataclass(frozen=True)
class Match:
    """Which recordings a purpose applies to. Every field is the set of values that match."""

    kinds: frozenset[RecordingKind]
    ages: frozenset[AgeBand]
    provisions: frozenset[ProvisionType]
    flagged_for_safeguarding: frozenset[bool]

    def matches(self, kind: RecordingKind, age: AgeBand, provision: ProvisionType, flagged: bool) -> bool:
        return (
            kind in self.kinds
            and age in self.ages
            and provision in self.provisions
            and flagged in self.flagged_for_safeguarding
        )


@dataclass(frozen=True)
class LawfulBasis:
    """UK GDPR Art. 6 basis and, for special category data, the Art. 9 condition (and DPA 2018 Sch. 1)."""

    article_6: str
    article_6_reason: str
    article_9: str | None = None
    article_9_reason: str | None = None
    dpa_2018_condition: str | None = None


@dataclass(frozen=True)
class ErasureRequest:
    """What a person's request for erasure (UK GDPR Art. 17) does to recordings kept for this purpose.

    Decided per purpose by the data protection officer, not by whoever runs the command: ``erase`` means
    no exemption applies once no hold is in place; ``keep`` names the Art. 17(3) exemption in ``reason``
    and the recording stays until its erase date.
    """

    erase: bool
    reason: str


@dataclass(frozen=True)
class Policy:
    """One purpose of processing, loaded from one file."""

    id: str
    name: str
    description: str
    source_file: str
    priority: int
    applies_to: Match
    retention: RetentionRule
    lawful_basis: LawfulBasis
    erasure_request: ErasureRequest
    access_roles: tuple[str, ...]
    data_subjects: tuple[str, ...]
    data_categories: tuple[str, ...]
    next_review: date
    sources: tuple[str, ...]


def all_combinations() -> Iterator[tuple[RecordingKind, AgeBand, ProvisionType, bool]]:
    """Every kind of recording Duet can make: the space the coverage check walks."""
    return itertools.product(RecordingKind, AgeBand, ProvisionType, (False, True))


@dataclass(frozen=True)
class PolicySet:
    """The validated policies: every combination matched, no ties (checked by the loader)."""

    policies: tuple[Policy, ...]

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies)

    def __len__(self) -> int:
        return len(self.policies)

    def by_id(self, policy_id: str) -> Policy:
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        raise KeyError(policy_id)

    def matching(
        self, kind: RecordingKind, age: AgeBand, provision: ProvisionType, flagged: bool
    ) -> list[Policy]:
        """Matching policies, highest priority first."""
        found = [p for p in self.policies if p.applies_to.matches(kind, age, provision, flagged)]
        return sorted(found, key=lambda p: -p.priority)

    def reviews_due(self, on: date) -> list[Policy]:
        """Policies whose review date has come (logged by each retention run, printed by ``duet retention run``)."""
        return [p for p in self.policies if p.next_review <= on]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
