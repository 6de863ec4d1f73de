"""Travel distance and time between two places, for home-visit allocation (policies/001_*).

The policy allocates "by travel distance from the home to the nearest available member of staff". Road
routing needs an external service, so distance is pluggable (``DistanceModel``); the default estimates road
distance as the great-circle distance times a circuity ("road") factor, which needs no network and no data.

Road factor 1.3: road distance over straight-line distance is typically between about 1.2 and 1.4 for
regional trips (circuity factors per country in Ballou, Rahardja & Sakai, "Selected country circuity
factors for road travel distance estimation", Transportation Research Part A 36 (2002) 843-848; Boscoe,
Henry & Zdeb, "A nationwide comparison of driving distance versus straight-line distance to hospitals",
Professional Geographer 64 (2012), mean about 1.4). 1.3 sits in that range. A constant factor never changes
the ranking, only the travel time used to check a visit can be reached; replace the model with a routing
service (OSRM, a commercial API) behind the same Protocol when that matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from server.errors import InvalidInput

EARTH_RADIUS_KM = 6371.0088  # IUGG mean Earth radius
DEFAULT_ROAD_FACTOR = 1.3
DEFAULT_AVERAGE_SPEED_KMH = 30.0  # mixed town and rural driving incl. parking; a setting, see allocation


@dataclass(frozen=True)
class Location:
    """A point in WGS84 degrees."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise InvalidInput(
                f"({self.lat}, {self.lon}) is not a latitude/longitude in degrees", field="location"
            )


class DistanceModel(Protocol):
    """Estimated travel distance by road, in km."""

    def distance_km(self, a: Location, b: Location) -> float: ...


def great_circle_km(a: Location, b: Location) -> float:
    """Haversine distance on a sphere (error under 0.5 % against the ellipsoid: fine for ranking)."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlon = math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class RoadEstimate:
    """Great-circle distance times a road (circuity) factor: the default ``DistanceModel``."""

    road_factor: float = DEFAULT_ROAD_FACTOR

    def __post_init__(self) -> None:
        if not 1.0 <= self.road_factor <= 3.0:
            raise InvalidInput(f"road factor {self.road_factor} is outside 1.0-3.0", field="road_factor")

    def distance_km(self, a: Location, b: Location) -> float:
        return great_circle_km(a, b) * self.road_factor


def travel_minutes(
    distance_km: float, average_speed_kmh: float = DEFAULT_AVERAGE_SPEED_KMH, buffer_minutes: int = 0
) -> int:
    """Whole minutes to drive ``distance_km`` (rounded up) plus a fixed buffer; 0 when already there."""
    if average_speed_kmh <= 0:
        raise InvalidInput("the average speed must be positive", field="average_speed_kmh")
    if distance_km <= 0:
        return 0
    return math.ceil(distance_km / average_speed_kmh * 60) + buffer_minutes
