"""The pure visit rules (server/visits/rules.py), each at its edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.bookings.rules import is_evening
from server.clock import FakeClock
from server.people.models import Client
from server.visits import rules
from server.visits.models import AlertStage, LocationKind
from tests.support.org import Org
from tests.support.visits import People

LONDON = ZoneInfo("Europe/London")
T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
GRACE, ESCALATE = timedelta(minutes=15), timedelta(minutes=30)


def test_evening_means_running_past_the_evening_hour_in_local_time() -> None:
    summer = datetime(2026, 6, 10, 17, 30, tzinfo=LONDON)  # 16:30 UTC
    assert not is_evening(summer, 30, 18)
    assert is_evening(summer, 31, 18)
    assert is_evening(summer.replace(hour=18), 30, 18)
    assert not is_evening(summer.replace(hour=18), 30, 19)


def test_location_preference_needs_a_reason_only_for_home_when_better_is_available() -> None:
    assert rules.location_reasons(LocationKind.HOME, False, None) == []
    assert rules.location_reasons(LocationKind.SETTING, True, None) == []
    assert rules.location_reasons(LocationKind.HOME, True, "too short") != []
    assert rules.location_reasons(LocationKind.HOME, True, "wheelchair access only at home") == []


def test_no_show_only_five_minutes_after_arriving() -> None:
    assert rules.no_show_reason(None, T0) is not None
    assert "1 min left" in (rules.no_show_reason(T0, T0 + timedelta(minutes=4)) or "")
    assert rules.no_show_reason(T0, T0 + timedelta(minutes=5)) is None


def test_overdue_stages_follow_grace_then_escalation() -> None:
    def stage(minutes: int, sent: set[str], ack: bool = False, finished: bool = False) -> AlertStage | None:
        return rules.overdue_stage(T0, finished, T0 + timedelta(minutes=minutes), GRACE, ESCALATE,
                                   frozenset(sent), ack)

    assert stage(14, set()) is None
    assert stage(15, set()) == AlertStage.MANAGER
    assert stage(44, {"manager"}) is None
    assert stage(45, {"manager"}) == AlertStage.SAFEGUARDING
    assert stage(45, {"manager"}, ack=True) is None
    assert stage(90, {"manager", "safeguarding"}) is None
    assert stage(90, set(), finished=True) is None
    assert rules.overdue_stage(None, False, T0, GRACE, ESCALATE, frozenset(), False) is None


def test_checklist_first_visit_free_then_confirmed_yearly_and_after_changes() -> None:
    day = date(2026, 11, 23)
    first = rules.ChecklistState(0, None, None, False)
    assert rules.workspace_block(first, day) is None
    confirmed = rules.ChecklistState(1, T0 - timedelta(days=365), None, False)
    assert "annual" in (rules.workspace_block(confirmed, day) or "")
    assert rules.workspace_block(confirmed, day - timedelta(days=1)) is None
    changed = rules.ChecklistState(3, T0 - timedelta(days=10), T0 - timedelta(days=1), True)
    assert "changed" in (rules.workspace_block(changed, day) or "")
    assert "waiting for a manager" in (rules.workspace_block(changed, day) or "")


async def test_a_responsible_adult_is_needed_until_the_18th_birthday(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    birthday = clock.now().date() + timedelta(days=2)
    async with sessionmaker() as s:
        child = await s.get(Client, org.child_id)
        assert child is not None
        child.date_of_birth = birthday.replace(year=birthday.year - 18)
        await s.commit()
    _, studio = await people.post("admin", "/api/v1/studios", {"name": "Studio", "address": "1 Road, Ely"})
    await people.post("manager", f"/api/v1/studios/{studio['id']}/approve", {"reason": "approved"})
    body = {"kind": "studio_visit", "practitioner_id": org.tutor_id, "client_id": org.child_id,
            "duration_minutes": 45, "guardian_ids": [org.guardian_id], "studio_id": studio["id"]}
    eve = clock.now() + timedelta(days=1)
    status, problem = await people.post("admin", "/api/v1/visits", body | {"starts_at": eve.isoformat()})
    assert status == 409 and "under 18" in problem["detail"]
    status, visit = await people.post("admin", "/api/v1/visits",
                                      body | {"starts_at": (eve + timedelta(days=1)).isoformat()})
    assert status == 201, visit
