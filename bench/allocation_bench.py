"""Time to propose staff for a home visit: 50 practitioners, 500 homes around Cambridge (target < 100 ms).

Run from the repository root: ``.venv/bin/python -m bench.allocation_bench [--seed N]``.
``generate_region`` is also used by tests/visits/test_allocation.py for the property check, so
the test and the bench see the same region.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from server.accounts.models import DbsLevel
from server.visits.allocation import Booking, Candidate, VisitRequest, propose
from server.visits.distance import Location

CAMBRIDGE = Location(52.2053, 0.1218)
VISIT_DAY = date(2026, 6, 10)
LONDON = ZoneInfo("Europe/London")


def _near(rng: random.Random, centre: Location, radius_km: float) -> Location:
    """A uniformly random point within ``radius_km`` of ``centre`` (flat-earth approximation)."""
    r = radius_km * math.sqrt(rng.random())
    angle = rng.uniform(0, 2 * math.pi)
    dlat = r * math.cos(angle) / 111.32
    dlon = r * math.sin(angle) / (111.32 * math.cos(math.radians(centre.lat)))
    return Location(centre.lat + dlat, centre.lon + dlon)


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(VISIT_DAY.year, VISIT_DAY.month, VISIT_DAY.day, hour, minute, tzinfo=LONDON)


def _diary(rng: random.Random, base: Location) -> tuple[Booking, ...]:
    bookings = []
    t = _at(8, 30) + timedelta(minutes=rng.choice((0, 30, 60, 90)))
    for _ in range(rng.randint(0, 5)):
        length = timedelta(minutes=rng.choice((30, 45, 60)))
        where = None if rng.random() < 0.3 else _near(rng, base, 15)  # remote session or a visit
        bookings.append(Booking(t, t + length, where, label="lesson"))
        t += length + timedelta(minutes=rng.choice((0, 15, 30, 60, 120)))
        if t.hour >= 18:
            break
    return tuple(bookings)


def generate_region(
    seed: int = 7, staff: int = 50, homes: int = 500
) -> tuple[list[Candidate], list[VisitRequest]]:
    """A seeded region: staff with varied eligibility and diaries, and one visit request per home."""
    rng = random.Random(seed)  # noqa: S311  # reproducible test data, not security
    levels = [
        DbsLevel.ENHANCED_BARRED,
        DbsLevel.ENHANCED,
        DbsLevel.ENHANCED,
        DbsLevel.STANDARD,
        DbsLevel.BASIC,
        None,
    ]
    candidates = []
    for i in range(1, staff + 1):
        base = _near(rng, CAMBRIDGE, 25) if rng.random() > 0.02 else None
        candidates.append(
            Candidate(
                staff_id=i,
                name=f"Practitioner {i}",
                base=base,
                opted_in=rng.random() < 0.75,
                approved=rng.random() < 0.92,
                dbs_level=(lvl.value if (lvl := rng.choice(levels)) else None),
                dbs_checked_on=VISIT_DAY - timedelta(days=rng.randint(-10, 4 * 365)),
                training_on=VISIT_DAY - timedelta(days=rng.randint(0, 4 * 365))
                if rng.random() > 0.05
                else None,
                bookings=_diary(rng, base or CAMBRIDGE),
            )
        )
    requests = []
    for _ in range(homes):
        start = _at(rng.randint(9, 16), rng.choice((0, 15, 30, 45)))
        requests.append(
            VisitRequest(_near(rng, CAMBRIDGE, 30), start, timedelta(minutes=rng.choice((30, 45, 60))))
        )
    return candidates, requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    candidates, requests = generate_region(args.seed)
    times_ms = []
    proposed = 0
    for req in requests:
        t0 = time.perf_counter()
        result = propose(req, candidates)
        times_ms.append((time.perf_counter() - t0) * 1000)
        proposed += bool(result.proposals)
    times_ms.sort()
    print(f"{len(requests)} requests x {len(candidates)} candidates, seed {args.seed}")
    print(
        f"median {statistics.median(times_ms):.3f} ms, p95 {times_ms[int(len(times_ms) * 0.95)]:.3f} ms, "
        f"max {times_ms[-1]:.3f} ms (target < 100 ms)"
    )
    print(f"requests with at least one proposal: {proposed}/{len(requests)}")


if __name__ == "__main__":
    main()
