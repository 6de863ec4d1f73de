"""GET /api/v1/visits/proposals on a generated region (50 practitioners, homes around Cambridge).

The region is bench/allocation_bench.py's, stored in the database; the API must rank exactly as the pure
allocation does and every proposal must respect every constraint. The time per proposal through the API
(database load included) is measured and printed.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench.allocation_bench import generate_region
from server.accounts.models import ApprovalStatus, Staff
from server.bookings.models import Booking, BookingKind, BookingStatus
from server.clock import FakeClock
from server.people.models import Client
from server.visits.allocation import ENHANCED_LEVELS, Candidate, VisitRequest, propose
from server.visits.models import LocationKind, Visit
from tests.support.org import Org
from tests.support.visits import People, put_on_map

HOMES = 20


async def _store_region(sessionmaker: async_sessionmaker[AsyncSession], org: Org, clock: FakeClock
                        ) -> tuple[list[Candidate], list[tuple[int, VisitRequest]]]:
    """Write the generated staff, diaries and homes; return the candidates with database ids and the homes."""
    candidates, requests = generate_region(seed=7, staff=50, homes=HOMES)
    stored: list[Candidate] = []
    homes: list[tuple[int, VisitRequest]] = []
    async with sessionmaker() as s:
        for c in candidates:
            staff = Staff(name=c.name, email=f"p{c.staff_id}@region.example.org", roles="practitioner",
                          dbs_level=c.dbs_level, dbs_checked_on=c.dbs_checked_on,
                          safeguarding_training_on=c.training_on, home_visits_opt_in=c.opted_in,
                          base_lat=c.base.lat if c.base else None, base_lon=c.base.lon if c.base else None,
                          status=ApprovalStatus.APPROVED if c.approved else ApprovalStatus.SUSPENDED,
                          created_at=clock.now())
            s.add(staff)
            await s.flush()
            for b in c.bookings:
                booking = Booking(kind=BookingKind.LIVE_VIDEO if b.location is None else BookingKind.HOME_VISIT,
                                  practitioner_id=staff.id, client_id=org.child_id, starts_at=b.start,
                                  duration_minutes=int((b.end - b.start).total_seconds() // 60),
                                  status=BookingStatus.CONFIRMED, created_at=clock.now())
                s.add(booking)
                await s.flush()
                if b.location is not None:
                    s.add(Visit(booking_id=booking.id, location_kind=LocationKind.HOME, lat=b.location.lat,
                                lon=b.location.lon, created_at=clock.now()))
            stored.append(replace(c, staff_id=staff.id))
        for i, r in enumerate(requests):
            home = Client(first_name="Home", last_name=str(i), date_of_birth=clock.now().date() - timedelta(days=4000),
                          lat=r.home.lat, lon=r.home.lon, created_at=clock.now())
            s.add(home)
            await s.flush()
            homes.append((home.id, r))
        await s.commit()
    return stored, homes


async def test_proposals_on_a_generated_region_match_the_allocation_and_respect_every_constraint(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    candidates, homes = await _store_region(sessionmaker, org, clock)
    by_id = {c.staff_id: c for c in candidates}
    await people("admin")
    times_ms: list[float] = []
    proposed = 0
    for client_id, request in homes:
        started = time.perf_counter()
        status, result = await people.get("admin", "/api/v1/visits/proposals?" + "&".join((
            f"client_id={client_id}", f"starts_at={request.start.isoformat().replace('+', '%2B')}",
            f"duration={int(request.duration.total_seconds() // 60)}")))
        times_ms.append((time.perf_counter() - started) * 1000)
        assert status == 200, result
        expected = propose(request, candidates)
        assert [p["staff_id"] for p in result["proposals"]] == [p.staff_id for p in expected.proposals]
        distances = [p["distance_km"] for p in result["proposals"]]
        assert distances == sorted(distances)
        proposed += bool(distances)
        day = request.start.date()
        for p in result["proposals"]:
            c = by_id[p["staff_id"]]
            assert c.opted_in and c.approved and c.base is not None
            assert c.dbs_level in {str(v) for v in ENHANCED_LEVELS}
            assert c.dbs_checked_on is not None and c.dbs_checked_on.replace(year=c.dbs_checked_on.year + 3) > day
            assert c.training_on is not None and c.training_on.replace(year=c.training_on.year + 3) > day
            end = request.start + request.duration
            assert not [b for b in c.bookings if b.start < end and request.start < b.end]
        excluded = {e["staff_id"] for e in result["excluded"]}
        assert excluded | {p["staff_id"] for p in result["proposals"]} >= set(by_id)
    assert proposed > 0
    print(f"\nproposals API, 50 practitioners: median {statistics.median(times_ms):.1f} ms, "
          f"max {max(times_ms):.1f} ms over {len(times_ms)} homes")
    assert statistics.median(times_ms) < 1000  # generous on a shared 2-core machine; target 100 ms


async def test_a_practitioner_marked_unavailable_that_day_is_not_proposed_and_the_admin_is_told_why(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)  # tutor2 is the one opted in to home visits
    tomorrow = clock.now().replace(hour=14) + timedelta(days=1)

    async def ask(when: datetime) -> dict[str, Any]:
        status, result = await people.get("admin", f"/api/v1/visits/proposals?client_id={org.child_id}"
                                                   f"&starts_at={when.isoformat().replace('+', '%2B')}&duration=45")
        assert status == 200, result
        return dict(result)

    assert [p["staff_id"] for p in (await ask(tomorrow))["proposals"]] == [org.other_tutor_id]
    status, _ = await people.post("manager", f"/api/v1/staff/{org.other_tutor_id}/unavailable",
                                  {"day": tomorrow.date().isoformat(), "reason": "training course"})
    assert status == 201
    result = await ask(tomorrow)
    assert result["proposals"] == []
    (away,) = [e for e in result["excluded"] if e["staff_id"] == org.other_tutor_id]
    assert away["reasons"] == [f"marked unavailable for work on {tomorrow.date()}"]
    assert [p["staff_id"] for p in (await ask(tomorrow + timedelta(days=1)))["proposals"]] == [org.other_tutor_id]
