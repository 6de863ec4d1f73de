"""Real encoded media as the relay hands it to a recording tap: VP8 and Opus frames made with PyAV.

Used by the recorder tests and by bench/recorder_bench.py, so both feed the muxer the same kind of frames.
"""

from __future__ import annotations

import fractions

import av

from server.media.frames import AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedFrame, vp8_is_keyframe


def vp8_frames(pid: str, start: float, shade: int, seconds: float, width: int = 320, height: int = 240
               ) -> list[EncodedFrame]:
    """VP8 at 30 fps, pts from 0 on a 90 kHz clock, arriving from ``start``; each picture a little different."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    count = int(seconds * 30)
    frames = []
    for i in range(count + 1):
        picture = av.VideoFrame(width, height, "yuv420p") if i < count else None
        if picture is not None:
            for plane in picture.planes:
                plane.update(bytes([(shade + i) % 255]) * plane.buffer_size)
            picture.pts = i
        for packet in enc.encode(picture):
            data = bytes(packet)
            frames.append(EncodedFrame(pid, "video", "VP8", data, int(packet.pts) * 3000, VIDEO_TIME_BASE,
                                       vp8_is_keyframe(data), arrival=start + int(packet.pts) / 30))
    return frames


def opus_frames(pid: str, start: float, seconds: float) -> list[EncodedFrame]:
    """Opus, 20 ms stereo frames of silence, pts on a 48 kHz clock, arriving from ``start``."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    frames = []
    for i in range(int(seconds * 50)):
        sound = av.AudioFrame(format="s16", layout="stereo", samples=960)
        sound.planes[0].update(bytes(sound.planes[0].buffer_size))
        sound.sample_rate, sound.pts = 48000, i * 960
        for packet in enc.encode(sound):
            frames.append(EncodedFrame(pid, "audio", "opus", bytes(packet), int(packet.pts), AUDIO_TIME_BASE, True,
                                       arrival=start + int(packet.pts) / 48000))
    return frames
