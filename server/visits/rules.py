"""The visit rules from the policies, as pure functions of their inputs and the time (no database, no clock).

Each function returns the reasons a rule is broken (empty: allowed), worded for the admin or practitioner
who sees them, so the service can refuse with every reason at once. Sources:

* policies/001_*: location preference, home visits at least 30 minutes and for individuals, the account
  holder's written confirmation of the conditions, the workspace checklist (first visit, annually, after a
  change, confirmed by a manager before the next visit).
* policies/003_*: authorisation by a line manager with a clear purpose; visits out of hours only when
  agreed; wait no longer than 5 minutes at the door; lone-working check-in and check-out.
* policies/000_*: studio visits only at approved studios, with a responsible adult for a child or an adult
  who needs 1:1 support.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from server.visits.models import AlertStage, LocationKind

MIN_HOME_VISIT_MINUTES = 30
DOOR_WAIT = timedelta(minutes=5)
CHECKLIST_VALID_DAYS = 365
MIN_REASON = 10  # characters: "home visit because ..." needs more than a word


@dataclass(frozen=True)
class Conditions:
    """The account holder's written confirmation of the home-visit conditions (policies/001_*)."""

    parking: bool
    accessible: bool
    window_or_open_door: bool
    carer_on_site: bool
    evidence: str  # where the written confirmation is: "email of 2026-11-20", "signed form"

    def missing(self) -> list[str]:
        names = {"parking": "parking is available", "accessible": "the venue is accessible",
                 "window_or_open_door": "the workspace has a window or the door stays open",
                 "carer_on_site": "a parent or carer is on site for the whole visit"}
        return [text for key, text in names.items() if not getattr(self, key)]


def location_reasons(location: LocationKind, preferred_available: bool, home_reason: str | None) -> list[str]:
    """policies/001_*: a home visit while a setting or music centre is available needs a recorded reason."""
    if location == LocationKind.HOME and preferred_available and len((home_reason or "").strip()) < MIN_REASON:
        return ["a setting or music centre is available: record why a home visit is needed instead"]
    return []


def home_visit_reasons(duration_minutes: int, clients: int, conditions: Conditions | None,
                       opted_in: bool) -> list[str]:
    """policies/001_*: 30 minutes or more, one individual, opted-in staff, conditions confirmed in writing."""
    reasons = []
    if duration_minutes < MIN_HOME_VISIT_MINUTES:
        reasons.append(f"a home visit lasts at least {MIN_HOME_VISIT_MINUTES} minutes")
    if clients != 1:
        reasons.append("a home visit is for one individual")
    if not opted_in:
        reasons.append("the practitioner has not opted in to home visits")
    if conditions is None:
        reasons.append("the account holder has not confirmed the home-visit conditions in writing")
    else:
        reasons += [f"the account holder has not confirmed that {m}" for m in conditions.missing()]
        if len(conditions.evidence.strip()) < 3:
            reasons.append("say where the account holder's written confirmation is kept")
    return reasons


def needs_responsible_adult(adult: bool, needs_one_to_one_support: bool) -> bool:
    """policies/000_*: a responsible adult attends a studio visit with a child or an adult needing 1:1."""
    return not adult or needs_one_to_one_support


def studio_reasons(studio_approved: bool | None, adult: bool, needs_support: bool,
                   responsible_adult: str | None) -> list[str]:
    reasons = []
    if studio_approved is None:
        reasons.append("choose a studio")
    elif not studio_approved:
        reasons.append("the studio is not an approved studio")
    if needs_responsible_adult(adult, needs_support) and len((responsible_adult or "").strip()) < 2:
        who = "a client under 18" if not adult else "a client who needs 1:1 support"
        reasons.append(f"name the responsible adult who attends with {who}")
    return reasons


@dataclass(frozen=True)
class ChecklistState:
    """What is known about the workspace checklist of one client's home."""

    visits_held: int  # home visits already held (checked in) before this one
    last_confirmed: datetime | None  # when the newest manager-confirmed checklist was completed
    last_change: datetime | None  # the newest reported change to the home or workspace
    unconfirmed: bool  # a completed checklist waits for a manager


def workspace_block(state: ChecklistState, visit_day: date) -> str | None:
    """policies/001_*: after the first visit, no visit without a manager-confirmed checklist that is less
    than a year old and newer than any reported change. Returns the reason the visit is blocked."""
    if state.visits_held == 0:
        return None
    waiting = " (a checklist is waiting for a manager to confirm it)" if state.unconfirmed else ""
    if state.last_confirmed is None:
        return ("Visit blocked: the workspace checklist from the first visit has not been confirmed by a manager"
                + waiting)
    if state.last_change is not None and state.last_change >= state.last_confirmed:  # same instant: safe side
        return "Visit blocked: the home or workspace changed; a new workspace checklist must be confirmed" + waiting
    due = state.last_confirmed.date() + timedelta(days=CHECKLIST_VALID_DAYS)
    if visit_day >= due:
        return f"Visit blocked: the annual workspace checklist was due on {due}" + waiting
    return None


def no_show_reason(checked_in_at: datetime | None, now: datetime) -> str | None:
    """policies/003_*: wait 5 minutes at the door (from check-in), then record a no-show and leave."""
    if checked_in_at is None:
        return "Check in on arrival first; a no-show can be recorded 5 minutes after that."
    if now < checked_in_at + DOOR_WAIT:
        left = -int(-(checked_in_at + DOOR_WAIT - now).total_seconds() // 60)  # whole minutes, rounded up
        return f"Wait at the door for 5 minutes before recording a no-show ({left} min left)."
    return None


def overdue_stage(expected_return: datetime | None, finished: bool, now: datetime, grace: timedelta,
                  escalate: timedelta, sent: frozenset[str], acknowledged: bool) -> AlertStage | None:
    """The next overdue alert to send now, if any (policies/002_*, 003_*).

    After ``grace`` past the expected return the manager is alerted; ``escalate`` later, unless the manager's
    alert has been acknowledged, the safeguarding lead. Each stage is sent once (``sent``)."""
    if expected_return is None or finished:
        return None
    if now >= expected_return + grace and AlertStage.MANAGER not in sent:
        return AlertStage.MANAGER
    if (now >= expected_return + grace + escalate and AlertStage.SAFEGUARDING not in sent
            and AlertStage.MANAGER in sent and not acknowledged):
        return AlertStage.SAFEGUARDING
    return None
