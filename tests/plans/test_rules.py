"""The pure blended plan rules (server/plans/rules.py)."""

from __future__ import annotations

import pytest

from server.bookings.models import BookingKind
from server.plans import rules


@pytest.mark.parametrize("url", [
    "https://media.example.org/minuet-in-g.mp3",
    "https://example.org",
    "HTTPS://Example.org:8443/sheet%20music.pdf?page=2#bar-12",
    "https://musescore.example/ünïcode/piece",
])
def test_one_line_https_addresses_are_accepted(url: str) -> None:
    assert rules.url_problem(url) is None


@pytest.mark.parametrize(("url", "words"), [
    ("", "give the address"),
    ("http://example.org/a", "https://"),
    ("ftp://example.org/a", "https://"),
    ("javascript:alert(1)", "https://"),
    ("//example.org/a", "https://"),
    ("https://example.org/a\nb", "one line"),
    ("https://example.org/a\u2028b", "one line"),
    ("https://example.org/a\tb", "one line"),
    ("https://example.org/a\x00", "one line"),
    ("https://user@example.org/", "user name"),
    ("https://:pw@example.org/", "user name"),
    ("https:///path", "no host"),
    ("https://[::1/", "not a valid URL"),
    ("https://example.org:0/", "invalid port"),
    ("https://example.org/" + "a" * 2000, "longer than 2000"),
])
def test_other_addresses_are_refused_with_the_reason(url: str, words: str) -> None:
    assert words in (rules.url_problem(url) or "")


def test_blended_means_face_to_face_and_live_sessions_and_resources() -> None:
    assert rules.missing_parts([BookingKind.HOME_VISIT, BookingKind.LIVE_AUDIO], 1) == []
    assert rules.missing_parts([BookingKind.SETTING_SESSION, BookingKind.LIVE_VIDEO], 2) == []
    assert rules.missing_parts([BookingKind.STUDIO_VISIT, BookingKind.LIVE_VIDEO], 1) == []
    assert len(rules.missing_parts([], 0)) == 3
    assert rules.missing_parts([BookingKind.LIVE_VIDEO], 1) == [
        "a face-to-face session (home visit, studio visit or session in a setting)"]
    assert rules.missing_parts([BookingKind.HOME_VISIT], 1) == ["a live video or audio session"]


def test_the_summary_counts_by_kind_and_held_and_ignores_cancelled_for_blended() -> None:
    summary = rules.summarise([("home_visit", "confirmed", "held"), ("home_visit", "cancelled", None),
                               ("live_video", "confirmed", "attended"), ("live_audio", "confirmed", "did not attend"),
                               ("studio_visit", "confirmed", "no_show")], 1)
    assert (summary.total, summary.by_kind, summary.held, summary.cancelled, summary.missing) == (
        5, {"home_visit": 2, "live_video": 1, "live_audio": 1, "studio_visit": 1}, 2, 1, [])
    only_cancelled_visit = rules.summarise([("home_visit", "cancelled", None), ("live_audio", "confirmed", None)], 1)
    assert only_cancelled_visit.missing == [
        "a face-to-face session (home visit, studio visit or session in a setting)"]
