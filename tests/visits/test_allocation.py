"""Home-visit allocation: the nearest eligible, available member of staff first; the rest with reasons."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from server.errors import InvalidInput
from server.visits.allocation import (
    AllocationRules,
    Booking,
    Candidate,
    VisitRequest,
    propose,
)
from server.visits.distance import (
    Location,
    RoadEstimate,
    great_circle_km,
    travel_minutes,
)

LONDON = ZoneInfo("Europe/London")
DAY = date(2026, 6, 10)
HOME = Location(52.2053, 0.1218)  # central Cambridge


def north(km: float) -> Location:
    """A point roughly due north of HOME, ``km`` away in a straight line."""
    return Location(HOME.lat + km / 111.2, HOME.lon)


def at(h: int, m: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, h, m, tzinfo=LONDON)


def staff(staff_id: int = 1, **changes: Any) -> Candidate:
    good = Candidate(
        staff_id=staff_id,
        name=f"Staff {staff_id}",
        base=north(5),
        opted_in=True,
        approved=True,
        dbs_level="enhanced",
        dbs_checked_on=date(2025, 1, 1),
        training_on=date(2025, 1, 1),
        bookings=(),
    )
    return replace(good, **changes)


def visit(h: int = 14, minutes: int = 45) -> VisitRequest:
    return VisitRequest(HOME, at(h), timedelta(minutes=minutes))


def only_reasons(candidate: Candidate, req: VisitRequest | None = None) -> tuple[str, ...]:
    result = propose(req or visit(), [candidate])
    assert not result.proposals
    (excluded,) = result.excluded
    return excluded.reasons


# ---- each rule excludes with its reason ------------------------------------------------------------


def test_an_eligible_free_member_of_staff_is_proposed_from_their_base() -> None:
    result = propose(visit(), [staff()])
    (p,) = result.proposals
    assert p.staff_id == 1 and p.coming_from == "base" and p.from_location == north(5)
    assert p.distance_km == pytest.approx(5 * 1.3, rel=0.01)
    # 6.5 km at 30 km/h = 13 min, + 5 min parking
    assert p.travel_minutes == 18
    assert result.excluded == ()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"opted_in": False}, "not opted in to home visits"),
        ({"approved": False}, "approval suspended"),
        ({"base": None}, "no base location recorded"),
        ({"dbs_level": None}, "no DBS check recorded"),
        ({"dbs_checked_on": None}, "no DBS check recorded"),
        ({"dbs_level": "standard"}, "DBS check is standard, an enhanced check is needed"),
        ({"dbs_level": "basic"}, "DBS check is basic, an enhanced check is needed"),
        ({"dbs_checked_on": date(2023, 6, 10)}, "DBS check out of date since 2026-06-10"),
        ({"dbs_checked_on": date(2026, 6, 11)}, "DBS check dated 2026-06-11 is after the visit day"),
        ({"training_on": None}, "no safeguarding training recorded"),
        ({"training_on": date(2023, 3, 1)}, "safeguarding training out of date since 2026-03-01"),
        ({"training_on": date(2026, 7, 1)}, "safeguarding training dated 2026-07-01 is after the visit day"),
    ],
)
def test_each_rule_excludes_with_its_reason(changes: dict[str, Any], reason: str) -> None:
    assert only_reasons(staff(**changes)) == (reason,)


def test_staff_marked_unavailable_on_the_visit_day_are_not_proposed_whatever_the_hour() -> None:
    # policies/000_*: unavailable for work during the day; a morning visit is as much out as an evening one.
    away = staff(unavailable_days=frozenset({DAY}))
    assert only_reasons(away, visit(h=9)) == ("marked unavailable for work on 2026-06-10",)
    assert only_reasons(away, visit(h=17)) == ("marked unavailable for work on 2026-06-10",)
    next_day = VisitRequest(HOME, at(14) + timedelta(days=1), timedelta(minutes=45))
    assert propose(next_day, [away]).proposals  # only that day
    result = propose(visit(), [away, staff(2, base=north(20))])
    assert [p.staff_id for p in result.proposals] == [2]  # the nearer one is away: the next nearest instead


def test_enhanced_with_barred_list_check_counts_as_enhanced() -> None:
    assert propose(visit(), [staff(dbs_level="enhanced_barred")]).proposals


def test_training_done_three_years_ago_less_a_day_is_still_in_date() -> None:
    assert propose(visit(), [staff(training_on=date(2023, 6, 11))]).proposals
    assert only_reasons(staff(training_on=date(2023, 6, 10))) == (
        "safeguarding training out of date since 2026-06-10",
    )


def test_leap_day_training_expires_on_1_march() -> None:
    req = VisitRequest(HOME, datetime(2027, 3, 1, 10, tzinfo=LONDON), timedelta(minutes=30))
    assert only_reasons(staff(training_on=date(2024, 2, 29)), req) == (
        "safeguarding training out of date since 2027-03-01",
    )
    req_before = VisitRequest(HOME, datetime(2027, 2, 28, 10, tzinfo=LONDON), timedelta(minutes=30))
    assert propose(req_before, [staff(training_on=date(2024, 2, 29))]).proposals


def test_every_reason_is_listed_not_just_the_first() -> None:
    reasons = only_reasons(staff(opted_in=False, approved=False, training_on=None))
    assert reasons == (
        "not opted in to home visits",
        "approval suspended",
        "no safeguarding training recorded",
    )


def test_overlapping_booking_makes_staff_busy() -> None:
    busy = staff(bookings=(Booking(at(14, 30), at(15, 30), north(5)),))
    assert only_reasons(busy) == ("busy 14:30-15:30",)


def test_bookings_touching_the_visit_do_not_overlap_but_need_travel_time() -> None:
    # Previous booking ends 14:00 exactly at the next-door house: 0 km, 0 min: feasible.
    next_door = staff(bookings=(Booking(at(13), at(14), HOME),))
    (p,) = propose(visit(), [next_door]).proposals
    assert p.coming_from == "booking 13:00-14:00" and p.distance_km == 0 and p.travel_minutes == 0


def test_travel_time_makes_a_back_to_back_booking_infeasible() -> None:
    # 10 km straight line = 13 km road = 26 min + 5 min parking; the previous visit ends at 13:45.
    far_before = staff(bookings=(Booking(at(13), at(13, 45), north(10)),))
    assert only_reasons(far_before) == ("cannot arrive in time from the booking 13:00-13:45 (31 min travel)",)
    # Ending at 13:25 leaves 35 minutes: enough.
    ok = staff(bookings=(Booking(at(12, 40), at(13, 25), north(10)),))
    assert propose(visit(), [ok]).proposals


def test_travel_time_to_the_next_booking_is_checked() -> None:
    # The visit ends 14:45; the next booking at 15:00 is 10 km away (31 min).
    tight_after = staff(bookings=(Booking(at(15), at(16), north(10)),))
    assert only_reasons(tight_after) == ("cannot reach the next booking 15:00-16:00 in time (31 min travel)",)
    relaxed = staff(bookings=(Booking(at(15, 30), at(16), north(10)),))
    assert propose(visit(), [relaxed]).proposals


def test_remote_booking_means_coming_from_base() -> None:
    remote = staff(base=north(2), bookings=(Booking(at(12), at(13), None),))
    (p,) = propose(visit(), [remote]).proposals
    assert p.coming_from == "booking 12:00-13:00" and p.from_location == north(2)


def test_bookings_in_utc_are_read_in_the_visit_time_zone() -> None:
    utc = ZoneInfo("UTC")
    # 12:00-13:00 UTC is 13:00-14:00 in London (BST) and overlaps a 13:30 London visit.
    diary = (Booking(datetime(2026, 6, 10, 12, tzinfo=utc), datetime(2026, 6, 10, 13, tzinfo=utc), north(1)),)
    req = VisitRequest(HOME, at(13, 30), timedelta(minutes=30))
    assert only_reasons(staff(bookings=diary), req) == ("busy 13:00-14:00",)


def test_bookings_on_another_day_do_not_change_where_they_come_from() -> None:
    yesterday = Booking(at(13) - timedelta(days=1), at(14) - timedelta(days=1), north(1))
    (p,) = propose(visit(), [staff(bookings=(yesterday,))]).proposals
    assert p.coming_from == "base"


# ---- ranking ----------------------------------------------------------------------------------------


def test_ranked_nearest_first_with_ties_by_staff_id() -> None:
    people = [
        staff(1, base=north(8)),
        staff(2, base=north(3)),
        staff(3, base=north(12)),
        staff(4, base=north(3)),
    ]
    result = propose(visit(), people)
    assert [p.staff_id for p in result.proposals] == [2, 4, 1, 3]
    assert result.best is not None and result.best.staff_id == 2


def test_previous_booking_location_is_used_for_distance() -> None:
    # Base far away (20 km) but the morning visit ends 1 km from the home: they rank first.
    near_by_booking = staff(1, base=north(20), bookings=(Booking(at(11), at(12), north(1)),))
    near_base = staff(2, base=north(4))
    result = propose(visit(), [near_base, near_by_booking])
    assert [p.staff_id for p in result.proposals] == [1, 2]
    first = result.proposals[0]
    assert first.coming_from == "booking 11:00-12:00" and first.from_location == north(1)
    assert first.distance_km == pytest.approx(1.3, rel=0.01)


def test_latest_earlier_booking_is_the_one_they_come_from() -> None:
    diary = (
        Booking(at(9), at(10), north(1)),
        Booking(at(11), at(12), north(6)),
        Booking(at(16), at(17), north(1)),
    )
    (p,) = propose(visit(), [staff(bookings=diary)]).proposals
    assert p.coming_from == "booking 11:00-12:00" and p.from_location == north(6)


def test_excluded_staff_are_listed_for_transparency() -> None:
    result = propose(visit(), [staff(1), staff(2, opted_in=False), staff(3, approved=False)])
    assert [p.staff_id for p in result.proposals] == [1]
    assert [(e.staff_id, e.reason) for e in result.excluded] == [
        (2, "not opted in to home visits"),
        (3, "approval suspended"),
    ]


def test_no_eligible_staff_gives_no_proposal() -> None:
    result = propose(visit(), [staff(opted_in=False)])
    assert result.best is None and result.proposals == ()


def test_distance_model_is_pluggable() -> None:
    class Manhattan:
        def distance_km(self, a: Location, b: Location) -> float:
            return (abs(a.lat - b.lat) + abs(a.lon - b.lon)) * 100

    east = staff(1, base=Location(HOME.lat, HOME.lon + 0.05))
    northish = staff(2, base=Location(HOME.lat + 0.04, HOME.lon))
    result = propose(visit(), [east, northish], distance=Manhattan())
    assert [p.staff_id for p in result.proposals] == [2, 1]
    assert result.proposals[0].distance_km == pytest.approx(4.0)


def test_rules_are_settings() -> None:
    slow = AllocationRules(average_speed_kmh=10, buffer_minutes=0)
    (p,) = propose(visit(), [staff()], rules=slow).proposals
    assert p.travel_minutes == 39  # 6.5 km at 10 km/h


# ---- request validation (policies/001_*) -----------------------------------------------------------


def test_visit_shorter_than_30_minutes_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at least 30 minutes") as err:
        VisitRequest(HOME, at(14), timedelta(minutes=29))
    assert err.value.field == "duration"


def test_group_home_visit_is_refused() -> None:
    with pytest.raises(InvalidInput, match="one client only"):
        VisitRequest(HOME, at(14), timedelta(minutes=30), clients=2)


def test_naive_times_and_bad_bookings_are_refused() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        VisitRequest(HOME, at(14).replace(tzinfo=None), timedelta(minutes=30))
    with pytest.raises(InvalidInput, match="end after it starts"):
        Booking(at(14), at(14))
    with pytest.raises(InvalidInput, match="latitude/longitude"):
        Location(95.0, 0.0)


# ---- distance ----------------------------------------------------------------------------------------


def test_great_circle_matches_a_known_distance() -> None:
    # Cambridge (Great St Mary's) to London (Charing Cross): about 78.5 km in a straight line.
    assert great_circle_km(Location(52.2053, 0.1180), Location(51.5074, -0.1278)) == pytest.approx(
        79.4, abs=1.5
    )
    assert RoadEstimate().distance_km(HOME, HOME) == 0


def test_travel_minutes_round_up_and_add_the_buffer() -> None:
    assert travel_minutes(0.0, 30, 5) == 0
    assert travel_minutes(10.0, 30, 0) == 20
    assert travel_minutes(10.1, 30, 5) == 26
    with pytest.raises(InvalidInput):
        travel_minutes(1.0, 0)
    with pytest.raises(InvalidInput):
        RoadEstimate(road_factor=0.5)


# ---- generated region: property check over 500 homes -----------------------------------------------


def _bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "allocation_bench.py"
    spec = importlib.util.spec_from_file_location("allocation_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _independently_feasible(c: Candidate, req: VisitRequest) -> Location | None:
    """A second, brute-force statement of the rules: where they come from, or None if not allowed."""
    model = RoadEstimate()

    def mins(a: Location, b: Location) -> int:
        return travel_minutes(model.distance_km(a, b), 30.0, 5)

    def in_date(on: date | None) -> bool:
        if on is None or on > req.day:
            return False
        try:
            expiry = on.replace(year=on.year + 3)
        except ValueError:
            expiry = date(on.year + 3, 3, 1)
        return req.day < expiry

    if not (c.opted_in and c.approved and c.base is not None):
        return None
    if (
        c.dbs_level not in ("enhanced", "enhanced_barred")
        or not in_date(c.dbs_checked_on)
        or not in_date(c.training_on)
    ):
        return None
    if any(b.start < req.end and req.start < b.end for b in c.bookings):
        return None
    same_day = [b for b in c.bookings if b.start.date() == req.day]
    before = [b for b in same_day if b.end <= req.start]
    after = [b for b in same_day if b.start >= req.end]
    origin = c.base
    if before:
        prev = max(before, key=lambda b: b.end)
        origin = prev.location or c.base
        if prev.end + timedelta(minutes=mins(origin, req.home)) > req.start:
            return None
    if after:
        nxt = min(after, key=lambda b: b.start)
        if req.end + timedelta(minutes=mins(req.home, nxt.location or c.base)) > nxt.start:
            return None
    return origin


def test_generated_region_proposals_respect_every_constraint() -> None:
    candidates, requests = _bench().generate_region(seed=7)
    assert len(candidates) == 50 and len(requests) == 500
    by_id = {c.staff_id: c for c in candidates}
    model = RoadEstimate()
    proposed_any = 0
    for req in requests:
        result = propose(req, candidates)
        expected = {c.staff_id: origin for c in candidates if (origin := _independently_feasible(c, req))}
        assert {p.staff_id for p in result.proposals} == set(expected)
        assert {e.staff_id for e in result.excluded} == set(by_id) - set(expected)
        assert all(e.reasons for e in result.excluded)
        distances = [p.distance_km for p in result.proposals]
        assert distances == sorted(distances)
        for p in result.proposals:
            assert p.from_location == expected[p.staff_id]
            assert p.distance_km == pytest.approx(model.distance_km(p.from_location, req.home), abs=0.01)
        proposed_any += bool(result.proposals)
    # The region is meant to exercise both outcomes.
    assert 100 < proposed_any < 500
