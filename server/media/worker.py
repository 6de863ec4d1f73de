"""A media worker process: one ``MediaRouter`` with its own forwarding loop, driven by the web process.

Started by ``server.media.pool.WorkerPool`` as ``python -m server.media.worker FD CONFIG``; ``FD`` is its
end of a socketpair and ``CONFIG`` JSON with the router's settings. The worker owns the rooms placed on
it; it answers calls, pushes each participant's events, the recorded packets of each batch and its
stats. When the web process goes away (EOF) it closes every room and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import weakref
from collections.abc import Coroutine
from typing import Any

from server.clock import SystemClock
from server.media import protocol
from server.media.events import MediaEvent
from server.media.participant import Participant
from server.media.room import MediaRouter, Room
from server.media.rtp import Vp8Info
from server.media.streams import Recorder, Source

log = logging.getLogger(__name__)

STATS_INTERVAL = 0.25  # the bench reads packet counts from these


class Worker:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, config: dict[str, Any]) -> None:
        self.reader, self.writer = reader, writer
        self.router = MediaRouter(
            config.get("ice_servers", []), clock=SystemClock(), connect_timeout=config.get("connect_timeout", 30.0),
            answer_timeout=config.get("answer_timeout", 15.0), on_event=self._room_event,
            tick=config.get("tick", 0.005), empty_room_seconds=config.get("empty_room_seconds", 60.0),
            max_participants=config.get("max_participants"),
        )
        self.handles: dict[int, Participant] = {}
        self._next = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bodies: list[bytes] = []
        self._track_ids: weakref.WeakKeyDictionary[Source, int] = weakref.WeakKeyDictionary()  # gone with the source
        self._tracks = 0
        self._taps: dict[int, tuple[str, set[str] | None]] = {}  # tap id -> (room, participant ids)
        self.router.engine.after_tick.append(self._flush_packets)

    def send(self, header: dict[str, Any], body: bytes = b"") -> None:
        if not self.writer.is_closing():
            self.writer.write(protocol.pack(header, body))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("media worker task failed: %r", task.exception())

    def _room_event(self, room_id: str, event: MediaEvent) -> None:
        self.send({"op": "room_event", "room": room_id, "event": protocol.event_json(event)})

    # -- participants -----------------------------------------------------------------------------

    def _handle(self, participant: Participant) -> int:
        self._next += 1
        handle = self._next
        self.handles[handle] = participant
        self._spawn(self._pump(handle, participant))
        return handle

    async def _pump(self, handle: int, participant: Participant) -> None:
        try:
            async for event in participant.events():
                self.send({"op": "event", "h": handle, "event": protocol.event_json(event)})
        finally:
            self.handles.pop(handle, None)

    def _room(self, args: dict[str, Any]) -> Room:
        """The room named in a call: the one open here, or a new one with the caller's settings."""
        existing = self.router.rooms.get(args["room"])
        if existing is not None:
            return existing
        return self.router.room(args["room"], audio_only=args.get("audio_only", False),
                                music_mode=args.get("music_mode", False))

    # -- recording: packets go to the web process, which assembles (this process never does) ----------

    def _record(self, room: Room) -> None:
        for participant in room.participants.values():
            for source in participant.sources.values():
                wanted = any(r == room.id and (ids is None or source.participant_id in ids)
                             for r, ids in self._taps.values())
                source.set_recorder(self._ship(room.id) if wanted else None)

    def _ship(self, room_id: str) -> Recorder:
        pack = protocol.PACKET.pack
        bodies = self._bodies

        def ship(source: Source, seq: int, ts: int, marker: int, vp8: Vp8Info, payload: bytes, ssrc: int) -> None:
            track = self._track_ids.get(source)
            if track is None:  # a new source (a rejoin makes one): a new track, timed from its own start
                self._tracks += 1
                track = self._track_ids[source] = self._tracks
                self._flush_packets()  # the announcement goes before any packet of the track
                self.send({"op": "track", "id": track, "room": room_id, "pid": source.participant_id,
                           "kind": source.kind, "codec": source.codec})
            flags = (protocol.MARKER if marker else 0) | (protocol.START if vp8.start else 0)
            bodies.append(pack(track, seq, ts, flags, ssrc, vp8.size, len(payload)))
            bodies.append(payload)  # the web process skips the VP8 descriptor: no copy here

        return ship

    def _flush_packets(self) -> None:
        if self._bodies:
            body = b"".join(self._bodies)
            self._bodies.clear()
            self.send({"op": "packets"}, body)

    # -- calls ------------------------------------------------------------------------------------

    async def call(self, method: str, args: dict[str, Any]) -> Any:
        if method == "join":
            room = self._room(args)
            p = await room.join(args["pid"], publish=args.get("publish", True), loopback=args.get("loopback", False))
            self._record(room)
            return self._handle(p)
        if method == "rejoin":
            room = self._room(args)
            p = await room.rejoin(args["pid"])
            self._record(room)
            return self._handle(p)
        if method == "accept_offer":
            p = self.handles[args["h"]]
            answer = await p.accept_offer(args["sdp"])
            self._record(self._room(args))  # new sources of a recorded participant are recorded too
            return answer
        if method == "accept_answer":
            await self.handles[args["h"]].accept_answer(args["sdp"])
            return None
        if method == "leave":
            await self._room(args).leave(args["pid"], reason=args.get("reason", "left"))
            return None
        if method == "mute":
            self._room(args).mute(args["pid"], kind=args["kind"], muted=args["muted"])
            return None
        if method == "music_mode":
            self._room(args).music_mode = bool(args["on"])
            return None
        if method == "close":
            existing = self.router.rooms.get(args["room"])
            if existing is not None:
                await existing.close(args.get("reason", "closed"))
            return None
        if method == "tap":
            self._taps[args["tap"]] = (args["room"], set(args["pids"]) if args.get("pids") is not None else None)
            room = self._room(args)
            self._record(room)
            for participant in room.participants.values():
                for source in participant.sources.values():
                    source.request_keyframe()
            return None
        if method == "untap":
            entry = self._taps.pop(args["tap"], None)
            if entry is not None and entry[0] in self.router.rooms:
                self._record(self.router.rooms[entry[0]])
            return None
        if method == "keyframe":
            found = self.router.rooms.get(args["room"])
            member = found.participants.get(args["pid"]) if found else None
            track = member.sources.get(args["kind"]) if member else None
            if track is not None:
                track.request_keyframe()
            return None
        raise ValueError(f"unknown media worker call {method!r}")

    async def _answer(self, call_id: int, method: str, args: dict[str, Any]) -> None:
        try:
            value = await self.call(method, args)
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller, typed
            self.send({"op": "error", "id": call_id, "error": protocol.error_json(exc)})
        else:
            self.send({"op": "result", "id": call_id, "value": value})

    async def stats_loop(self) -> None:
        while True:
            await self.router.clock.sleep(STATS_INTERVAL)
            stats = self.router.stats()
            stats.pop("room_detail", None)
            stats["pid"] = os.getpid()
            stats["threads"] = threading.active_count()
            self.send({"op": "stats", "stats": stats})

    async def run(self) -> None:
        self._spawn(self.stats_loop())
        try:
            while True:
                header, _ = await protocol.read(self.reader)
                if header.get("op") == "call":
                    self._spawn(self._answer(header["id"], header["method"], header.get("args", {})))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the web process has gone: so do we
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.router.close()
            self.writer.close()


async def main(fd: int, config: dict[str, Any]) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    worker = Worker(reader, writer, config)
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, writer.close)
    await worker.run()


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("DUET_LOG_LEVEL", "WARNING"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the web process decides when workers stop
    asyncio.run(main(int(sys.argv[1]), json.loads(sys.argv[2])))
