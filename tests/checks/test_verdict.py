"""The server's verdict from measurements: each threshold moves it, with a reason in plain words."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.checks.verdict import Measurements, verdict

GOOD = Measurements(webrtc=True, camera_width=640, camera_height=480, camera_fps=30, mic_peak_dbfs=-12,
                    mic_floor_dbfs=-70, speakers_heard=True, rtt_ms=40, jitter_ms=5, loss=0, up_kbps=5000,
                    down_kbps=5000, ice_path="host", headphones=True)


@pytest.mark.parametrize(("change", "overall", "words"), [
    ({}, "video ready", ""),
    ({"up_kbps": 400}, "audio only", "Upload was 0.4 Mbit/s"),
    ({"rtt_ms": 450}, "audio only", "450 ms"),
    ({"loss": 0.05}, "audio only", "5% of test messages"),
    ({"camera_fps": 8}, "audio only", "close other video apps"),
    ({"loopback_fps": 6.0, "loopback_kbps": 90.0}, "audio only", "came back from our server at 6 frames"),
    ({"loopback_fps": 24.0, "loopback_kbps": 90.0}, "video ready", ""),  # a still picture needs few bits
    ({"up_kbps": 60}, "not ready", "move nearer the router"),
    ({"mic_peak_dbfs": -80}, "not ready", "microphone stayed silent"),
    ({"speakers_heard": False}, "not ready", "did not hear"),
    ({"webrtc": False}, "not ready", "cannot make video calls"),
])
def test_thresholds(change: dict[str, object], overall: str, words: str) -> None:
    result = verdict(replace(GOOD, **change))  # type: ignore[arg-type]
    assert result.overall == overall
    assert words in " ".join(result.reasons)


@pytest.mark.parametrize(("change", "words"), [
    ({"mic_peak_dbfs": 0}, "clipping"),
    ({"mic_floor_dbfs": -30}, "Background noise"),
    ({"headphones": False}, "headphones"),
    ({"up_kbps": 150, "down_kbps": 5000}, "128 kbit/s"),
])
def test_music_mode_advice(change: dict[str, object], words: str) -> None:
    assert verdict(GOOD).music_advisable
    result = verdict(replace(GOOD, **change))  # type: ignore[arg-type]
    assert not result.music_advisable and words in " ".join(result.music_reasons)
