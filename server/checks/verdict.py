"""The verdict of a device check, computed on the server from what the browser measured.

Thresholds and their sources are in docs/device-check.md. Each reason says what is wrong in plain words
and what to try.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Video: WebRTC VGA at 30 fps needs about 500 kbit/s each way plus headroom (Google Meet and Zoom publish
# 0.6-1.2 Mbit/s for 1:1 video); audio-only Opus voice about 32-64 kbit/s. Delay: ITU-T G.114 (150 ms
# one way is good, 400 ms the limit for conversation). Music: stereo Opus at 128 kbit/s.
VIDEO_UP_KBPS = 600
VIDEO_DOWN_KBPS = 600
AUDIO_KBPS = 100
MUSIC_UP_KBPS = 200
VIDEO_RTT_MS = 300
AUDIO_RTT_MS = 800
VIDEO_LOSS = 0.03
AUDIO_LOSS = 0.10
JITTER_MS = 50
MIN_FPS = 15
LOOPBACK_MIN_FPS = 10  # own video back from the relay: below this, movement and bowing look jerky
MIN_WIDTH = 320
SILENT_DBFS = -60.0
CLIP_DBFS = -1.0
NOISE_FLOOR_DBFS = -45.0


@dataclass(frozen=True)
class Measurements:
    webrtc: bool
    camera_width: int
    camera_height: int
    camera_fps: float
    mic_peak_dbfs: float
    mic_floor_dbfs: float
    speakers_heard: bool
    rtt_ms: float
    jitter_ms: float
    loss: float  # 0..1 of probes unanswered
    up_kbps: float
    down_kbps: float
    ice_path: str  # host | srflx | relay | none
    headphones: bool = False
    loopback_fps: float | None = None  # the browser's own video back through the relay (None: not run)
    loopback_kbps: float | None = None  # stored, not judged: a still picture needs little (see docs)


@dataclass(frozen=True)
class Verdict:
    overall: str
    reasons: list[str] = field(default_factory=list)
    music_advisable: bool = False
    music_reasons: list[str] = field(default_factory=list)


def _audio_problems(m: Measurements) -> list[str]:
    problems = []
    if m.mic_peak_dbfs <= SILENT_DBFS:
        problems.append("The microphone stayed silent: check it is not muted and the right one is chosen.")
    if not m.speakers_heard:
        problems.append("You did not hear the test sound: turn the volume up or choose other speakers.")
    if m.up_kbps < AUDIO_KBPS or m.down_kbps < AUDIO_KBPS:
        problems.append(f"The connection carried only {min(m.up_kbps, m.down_kbps):.0f} kbit/s: "
                        "move nearer the router or use a wired connection.")
    if m.rtt_ms > AUDIO_RTT_MS:
        problems.append(f"Messages took {m.rtt_ms:.0f} ms to go and come back: conversation will lag.")
    if m.loss > AUDIO_LOSS:
        problems.append(f"{m.loss:.0%} of test messages were lost: move nearer the router.")
    return problems


def _video_problems(m: Measurements) -> list[str]:
    problems = []
    if m.camera_width < MIN_WIDTH or m.camera_fps < MIN_FPS:
        problems.append(f"The camera gave {m.camera_width}x{m.camera_height} at {m.camera_fps:.0f} frames a "
                        "second: close other video apps or use another device.")
    if m.up_kbps < VIDEO_UP_KBPS:
        problems.append(f"Upload was {m.up_kbps / 1000:.1f} Mbit/s; video needs about "
                        f"{VIDEO_UP_KBPS / 1000:.1f}: close other video apps, move nearer the router.")
    if m.down_kbps < VIDEO_DOWN_KBPS:
        problems.append(f"Download was {m.down_kbps / 1000:.1f} Mbit/s; video needs about "
                        f"{VIDEO_DOWN_KBPS / 1000:.1f}.")
    if m.rtt_ms > VIDEO_RTT_MS:
        problems.append(f"Round trips took {m.rtt_ms:.0f} ms: video will lag; try the laptop, not the phone.")
    if m.loss > VIDEO_LOSS:
        problems.append(f"{m.loss:.0%} of test messages were lost: video would freeze.")
    if m.loopback_fps is not None and m.loopback_fps < LOOPBACK_MIN_FPS:
        problems.append(f"Your video came back from our server at {m.loopback_fps:.0f} frames a second: close "
                        "other video apps and tabs, or use the laptop, not the phone.")
    if m.jitter_ms > JITTER_MS:
        problems.append(f"Timing varied by {m.jitter_ms:.0f} ms: another device may be using the connection.")
    return problems


def verdict(m: Measurements) -> Verdict:
    if not m.webrtc:
        return Verdict("not ready", ["This browser cannot make video calls: use a current Chrome, Edge, Firefox "
                                     "or Safari."], False, ["Not possible without a working connection."])
    audio = _audio_problems(m)
    video = _video_problems(m)
    if audio:
        overall, reasons = "not ready", audio
    elif video:
        overall, reasons = "audio only", video
    else:
        overall, reasons = "video ready", []
    music: list[str] = []
    if m.mic_peak_dbfs >= CLIP_DBFS:
        music.append("The instrument is clipping the microphone: move it further away or lower the input level.")
    if m.mic_floor_dbfs > NOISE_FLOOR_DBFS:
        music.append(f"Background noise is high ({m.mic_floor_dbfs:.0f} dBFS): find a quieter room.")
    if not m.headphones:
        music.append("Use headphones: music mode turns echo cancellation off.")
    if m.up_kbps < MUSIC_UP_KBPS:
        music.append(f"Upload of {m.up_kbps:.0f} kbit/s cannot carry stereo sound at 128 kbit/s.")
    return Verdict(overall, reasons, overall != "not ready" and not music, music)
