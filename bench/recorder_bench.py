"""Recorder cost: CPU per recorded session-second to mux and seal a two-person VP8/Opus session.

The frames are real VP8 (640x480, 30 fps) and Opus (20 ms) made with PyAV beforehand (not timed), in
arrival order as the relay's recording tap hands them over. Timed, on one core: the WebM muxer (no
decoding) and AES-256-GCM sealing of its output in 1 MiB chunks, as ``Recorder`` and ``SealedWriter`` do.
Disk and upload are left out: the spool writes and the store uploads run beside it and are I/O.

Run: .venv/bin/python -m bench.recorder_bench [--seconds 30]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.recording.muxer import Track, WebmMuxer  # noqa: E402
from server.recording.sealing import ChunkSealer, RecordingHeader, new_data_key  # noqa: E402
from tests.support.frames import opus_frames, vp8_frames  # noqa: E402

CHUNK = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    people = ("staff:1", "guardian:3")
    frames = []
    for n, pid in enumerate(people):
        frames += vp8_frames(pid, n * 0.3, 40 + 80 * n, args.seconds, 640, 480) + opus_frames(pid, n * 0.3,
                                                                                                args.seconds)
    frames.sort(key=lambda f: f.arrival)
    media_bytes = sum(len(f.data) for f in frames)

    muxer = WebmMuxer([Track(p, k) for p in people for k in ("video", "audio")])
    sealer = ChunkSealer(new_data_key(), RecordingHeader.new(uuid.uuid4(), chunk_size_hint=CHUNK))
    buffered = bytearray()
    written = 0
    cpu = time.process_time()
    for frame in frames:
        buffered += muxer.add(frame)
        while len(buffered) >= CHUNK:
            written += len(sealer.seal(bytes(buffered[:CHUNK]))[1])
            del buffered[:CHUNK]
    buffered += muxer.close()
    written += len(sealer.finish(bytes(buffered))[1])
    cpu = time.process_time() - cpu

    per_second_ms = cpu / args.seconds * 1000
    print(f"recorder: {len(frames)} frames, {media_bytes / 1e6:.1f} MB of media, {args.seconds:.0f} s of a "
          f"two-person session (640x480 VP8 + Opus each)")
    print(f"recorder CPU: {per_second_ms:.2f} ms per recorded session-second "
          f"({per_second_ms / 10:.2f} % of one core per recorded session); sealed {written / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
