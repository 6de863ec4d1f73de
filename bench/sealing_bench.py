"""Sealing throughput: how many MB/s of media one core seals and opens in 1 MiB chunks.

Run: .venv/bin/python bench/sealing_bench.py [--chunks 256] [--chunk-mib 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.recording.sealing import ChunkSealer, RecordingHeader, new_data_key, open_chunk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=256)
    parser.add_argument("--chunk-mib", type=float, default=1.0)
    args = parser.parse_args()
    size = int(args.chunk_mib * 1024 * 1024)
    plaintext = os.urandom(size)
    key = new_data_key()
    header = RecordingHeader.new(uuid.uuid4(), chunk_size_hint=size)
    sealer = ChunkSealer(key, header)

    start = time.perf_counter()  # a benchmark measures wall time; no Clock needed here
    blobs = [sealer.seal(plaintext)[1] for _ in range(args.chunks)]
    seal_s = time.perf_counter() - start

    start = time.perf_counter()
    for i, blob in enumerate(blobs):
        open_chunk(key, header, i, blob)
    open_s = time.perf_counter() - start

    total_mb = args.chunks * size / 1e6
    print(f"chunk size: {size} bytes, chunks: {args.chunks}, total: {total_mb:.1f} MB")
    print(f"seal: {total_mb / seal_s:.0f} MB/s")
    print(f"open: {total_mb / open_s:.0f} MB/s")


if __name__ == "__main__":
    main()
