"""Media workers: rooms run in worker processes, one per core; the web process talks to them.

``WorkerPool`` offers the ``MediaRouter`` API (``room()``, ``stats()``, ``close()``) and hands out
``RoomProxy``/``ParticipantProxy`` objects with the ``Room``/``Participant`` API, so the signalling and
recording layers do not know where media runs. A room is placed on the least loaded live worker when
its first participant joins, and stays there while anyone is in it. A worker that dies takes only its
rooms: their participants get ``ParticipantLeft("the media server restarted")`` (as after a node
failure: the browser joins again, and the room is placed on a live worker); the pool starts a new
worker. Recording taps receive packets from the worker and assemble frames here, off the worker.
The protocol is in ``server/media/protocol.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

from server.clock import Clock, SystemClock, Timer
from server.errors import Conflict
from server.media import protocol
from server.media.errors import MediaFull, ParticipantNotFound, RoomClosed
from server.media.events import ConnectionStateChanged, MediaEvent, ParticipantLeft
from server.media.forwarding import FrameTap
from server.media.frames import TEXT_TIME_BASE, EncodedFrame, Kind, PacketUnit, TrackFrames
from server.media.room import IceServer, check_id, ice_server

log = logging.getLogger(__name__)

EVENT_QUEUE = 256
RESTARTED = "the media server restarted"


class WorkerGone(Exception):
    pass


class WorkerHandle:
    """One worker process and its end of the socketpair."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.alive = False
        self.participants = 0
        self.rooms: set[RoomProxy] = set()
        self.handles: dict[int, ParticipantProxy] = {}
        self.last_stats: dict[str, Any] = {}
        self.tracks: dict[int, tuple[str, str, Kind, str]] = {}  # announced by the worker
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self, config: dict[str, Any]) -> None:
        mine, theirs = socket.socketpair()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.media.worker", str(theirs.fileno()), json.dumps(config),
            pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
        )
        theirs.close()
        reader, self.writer = await asyncio.open_unix_connection(sock=mine)
        self.alive = True
        self._reader = asyncio.get_running_loop().create_task(self._read(reader), name=f"media-worker-{self.index}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def call(self, method: str, **args: Any) -> Any:
        if not self.alive or self.writer is None:
            raise MediaFull("The media server is restarting; please join again in a moment.")
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[self._next] = future
        self.writer.write(protocol.pack({"op": "call", "id": self._next, "method": method, "args": args}))
        try:
            return await future
        except WorkerGone:
            raise MediaFull("The media server restarted; please join again.") from None

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header, body = await protocol.read(reader)
                op = header.get("op")
                if op in ("result", "error"):
                    future = self._calls.pop(header["id"], None)
                    if future is not None and not future.done():
                        if op == "result":
                            future.set_result(header.get("value"))
                        else:
                            future.set_exception(protocol.error_from_json(header["error"]))
                elif op == "event":
                    proxy = self.handles.get(header["h"])
                    if proxy is not None:
                        proxy._deliver(protocol.event_from_json(header["event"]))
                elif op == "room_event":
                    self.pool._room_event(header["room"], protocol.event_from_json(header["event"]))
                elif op == "track":
                    self.tracks[header["id"]] = (header["room"], header["pid"], header["kind"], header["codec"])
                elif op == "packets":
                    self.pool._packets(self, body)
                elif op == "stats":
                    self.last_stats = header["stats"]
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            self._lost()

    def _lost(self) -> None:
        """The worker ended: its calls fail, its participants leave, its rooms wait for a new join."""
        was_alive, self.alive = self.alive, False
        if self.writer is not None:
            self.writer.close()
        for future in self._calls.values():
            if not future.done():
                future.set_exception(WorkerGone())
        self._calls.clear()
        for proxy in list(self.handles.values()):
            proxy._deliver(ConnectionStateChanged(proxy.id, "failed"))
            proxy._deliver(ParticipantLeft(proxy.id, RESTARTED))
        self.handles.clear()
        for room in list(self.rooms):
            room._worker_lost()
        self.rooms.clear()
        self.participants = 0
        if was_alive and not self.pool.closing:
            log.error("media worker %s (pid %s) ended; its rooms rejoin elsewhere", self.index, self.pid)
            self.pool._spawn(self.pool._restart(self))

    async def stop(self) -> None:
        self.alive = False
        if self.writer is not None:
            self.writer.close()  # EOF: the worker closes its rooms and exits
        if self.proc is not None:
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class _Keyframes:
    """What a recording tap asks of a remote track."""

    def __init__(self, room: RoomProxy, participant_id: str, kind: str) -> None:
        self.room, self.participant_id, self.kind = room, participant_id, kind

    def request_keyframe(self) -> None:
        self.room._send_and_forget("keyframe", pid=self.participant_id, kind=self.kind)


class ParticipantProxy:
    """A participant on a media worker, with the ``Participant`` API."""

    def __init__(self, room: RoomProxy, participant_id: str, handle: int, *, publish: bool, loopback: bool) -> None:
        self.id = participant_id
        self.room = room
        self.handle = handle
        self.publish = publish
        self.loopback = loopback
        self.closed = False
        self.close_reason = ""
        self._events: deque[MediaEvent] = deque()
        self._ready = asyncio.Event()
        self._hold = 0

    def _deliver(self, event: MediaEvent) -> None:
        if self.closed:
            return
        if isinstance(event, ParticipantLeft):
            self.closed = True
            self.close_reason = event.reason
            self.room._gone(self)
        elif len(self._events) >= EVENT_QUEUE:
            log.warning("participant %s: %d events not read; removing them", self.id, EVENT_QUEUE)
            self.room._send_and_forget("leave", pid=self.id, reason="signalling not reading events")
            return
        self._events.append(event)
        self._ready.set()

    async def events(self) -> AsyncIterator[MediaEvent]:
        while True:
            while not self._events or self._hold:
                if self.closed and not self._events:
                    return
                self._ready.clear()
                await self._ready.wait()
            yield self._events.popleft()

    @asynccontextmanager
    async def hold_events(self) -> AsyncIterator[None]:
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
            self._ready.set()

    async def accept_offer(self, sdp: str) -> str:
        if self.closed:
            raise RoomClosed("You are no longer in this session.")
        answer: str = await self.room._call("accept_offer", h=self.handle, sdp=sdp)
        return answer

    async def accept_answer(self, sdp: str) -> None:
        if self.closed:
            raise RoomClosed("You are no longer in this session.")
        await self.room._call("accept_answer", h=self.handle, sdp=sdp)

    def stats(self) -> dict[str, Any]:
        return {"worker": self.room.worker.index if self.room.worker else None, "closed": self.closed}

    def __repr__(self) -> str:
        return f"<ParticipantProxy {self.room.id}/{self.id}>"


class RoomProxy:
    """A room placed on a media worker, with the ``Room`` API."""

    def __init__(self, pool: WorkerPool, room_id: str, *, audio_only: bool, music_mode: bool) -> None:
        self.id = room_id
        self.audio_only = audio_only
        self._music_mode = music_mode
        self.participants: dict[str, ParticipantProxy] = {}
        self.closed = False
        self.released = False
        self.worker: WorkerHandle | None = None
        self._pool = pool
        self._taps: dict[int, FrameTap] = {}
        self._frames: dict[tuple[int, int], TrackFrames] = {}
        self._empty_timer: Timer | None = None

    @property
    def music_mode(self) -> bool:
        return self._music_mode

    @music_mode.setter
    def music_mode(self, on: bool) -> None:
        self._music_mode = on
        if self.worker is not None:
            self._send_and_forget("music_mode", on=on)

    async def _call(self, method: str, **args: Any) -> Any:
        worker = self.worker
        if worker is None:
            raise RoomClosed("This session's media is not running; join again.")
        return await worker.call(method, room=self.id, audio_only=self.audio_only, music_mode=self._music_mode,
                                 **args)

    def _send_and_forget(self, method: str, **args: Any) -> None:
        """A call whose answer nobody waits for (mute, keyframe): owned by the pool, failures logged."""
        if self.worker is not None:
            self._pool._spawn(self._call(method, **args))

    # -- membership -------------------------------------------------------------------------------

    async def join(self, participant_id: str, *, publish: bool = True, loopback: bool = False) -> ParticipantProxy:
        check_id(participant_id, "participant")
        if self.closed:
            raise RoomClosed("This session has ended.")
        if participant_id in self.participants:
            raise Conflict(f"{participant_id} is already in this session; use rejoin.", field="participant")
        if self._empty_timer is not None:
            self._empty_timer.cancel()
            self._empty_timer = None
        if self.released:
            self.released = False
            self._pool.rooms.setdefault(self.id, self)
        if self.worker is None:
            self.worker = self._pool._place()
            self.worker.rooms.add(self)
            for tap_id, tap in self._taps.items():
                self._send_and_forget("tap", tap=tap_id, pids=sorted(tap.participant_ids)
                                      if tap.participant_ids is not None else None)
        worker = self.worker
        handle = await self._call("join", pid=participant_id, publish=publish, loopback=loopback)
        return self._adopt(worker, participant_id, handle, publish, loopback)

    def _adopt(self, worker: WorkerHandle, pid: str, handle: int, publish: bool, loopback: bool) -> ParticipantProxy:
        proxy = ParticipantProxy(self, pid, handle, publish=publish, loopback=loopback)
        worker.handles[handle] = proxy
        worker.participants += 1
        self.participants[pid] = proxy
        return proxy

    def get(self, participant_id: str) -> ParticipantProxy:
        try:
            return self.participants[participant_id]
        except KeyError:
            raise ParticipantNotFound(f"{participant_id} is not in this session.") from None

    def _gone(self, proxy: ParticipantProxy) -> None:
        if self.participants.get(proxy.id) is proxy:
            del self.participants[proxy.id]
        for key in [k for k, f in self._frames.items() if f.participant_id == proxy.id]:
            del self._frames[key]  # a rejoin's tracks get new keys; a lost assembler only waits for a keyframe
        if self.worker is not None and self.worker.handles.pop(proxy.handle, None) is not None:
            self.worker.participants -= 1
        if not self.participants and not self.closed and self._empty_timer is None:
            self._empty_timer = self._pool.clock.call_later(self._pool.empty_room_seconds, self._release)

    def _release(self) -> None:
        self._empty_timer = None
        if not self.participants and not self.closed and not self._taps:
            self.released = True
            if self.worker is not None:
                self.worker.rooms.discard(self)
                self.worker = None
            self._pool._forget(self)

    def _worker_lost(self) -> None:
        self.worker = None
        self._frames.clear()

    async def leave(self, participant_id: str, *, reason: str = "left") -> None:
        proxy = self.participants.get(participant_id)
        if proxy is None:
            return
        try:
            await self._call("leave", pid=participant_id, reason=reason)
        except (RoomClosed, MediaFull):
            pass
        proxy._deliver(ParticipantLeft(participant_id, reason))  # a no-op when the worker's came first

    async def remove(self, participant_id: str) -> None:
        self.get(participant_id)
        await self.leave(participant_id, reason="removed")

    async def rejoin(self, participant_id: str) -> ParticipantProxy:
        old = self.get(participant_id)
        worker = self.worker
        if worker is None:
            raise RoomClosed("This session's media is not running; join again.")
        handle = await self._call("rejoin", pid=participant_id)
        old._deliver(ParticipantLeft(participant_id, "rejoining"))
        return self._adopt(worker, participant_id, handle, old.publish, old.loopback)

    def mute(self, participant_id: str, *, kind: Kind = "audio", muted: bool = True) -> None:
        self.get(participant_id)
        self._send_and_forget("mute", pid=participant_id, kind=kind, muted=muted)

    async def close(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        if self.worker is not None:
            with contextlib.suppress(RoomClosed, MediaFull):
                await self._call("close", reason=reason)
        for proxy in list(self.participants.values()):
            proxy._deliver(ParticipantLeft(proxy.id, reason))
        for tap in list(self._taps.values()):
            tap.close()
        if self._empty_timer is not None:
            self._empty_timer.cancel()
            self._empty_timer = None
        self._pool._forget(self)

    # -- recording -----------------------------------------------------------------------------------

    def tap(self, participant_ids: set[str] | None = None, *, maxlen: int = 900) -> FrameTap:
        tap_id = self._pool._new_tap_id()
        tap = FrameTap(maxlen, participant_ids, lambda t: self._untap(tap_id))
        self._taps[tap_id] = tap
        self._send_and_forget("tap", tap=tap_id, pids=sorted(participant_ids) if participant_ids is not None else None)
        return tap

    def _untap(self, tap_id: int) -> None:
        self._taps.pop(tap_id, None)
        self._send_and_forget("untap", tap=tap_id)

    def _packet(self, key: tuple[int, int], pid: str, kind: Kind, codec: str, unit: PacketUnit) -> None:
        """A recorded packet of track ``key`` (worker, track id): a rejoin's new track starts its own clock."""
        frames = self._frames.get(key)
        if frames is None:
            source = _Keyframes(self, pid, kind)

            def emit(frame: EncodedFrame) -> None:
                for tap in self._taps.values():
                    if tap.wants(frame.participant_id):
                        tap.push(source, frame)

            frames = self._frames[key] = TrackFrames(pid, kind, codec, self._pool.clock.monotonic, emit)
        if frames.add(unit):
            self._send_and_forget("keyframe", pid=pid, kind=kind)

    def chat(self, participant_id: str, cue: str) -> None:
        frame = EncodedFrame(participant_id=participant_id, kind="text", codec="webvtt", data=cue.encode(), pts=0,
                             time_base=TEXT_TIME_BASE, keyframe=True, arrival=self._pool.clock.monotonic())
        for tap in self._taps.values():
            tap.push_text(frame)

    def stats(self) -> dict[str, Any]:
        return {"audio_only": self.audio_only, "music_mode": self.music_mode,
                "worker": self.worker.index if self.worker else None,
                "participants": {pid: p.stats() for pid, p in self.participants.items()},
                "taps": [{"frames_dropped": t.frames_dropped} for t in self._taps.values()]}


class WorkerPool:
    """``MediaRouter``'s API over ``workers`` media worker processes (see the module docstring).

    ``capacity``: participants one worker takes (admission control); past it on every worker, a join
    is refused with ``MediaFull``. Call ``await start()`` before use and ``await close()`` at the end.
    """

    def __init__(self, workers: int | None = None, ice_servers: Sequence[IceServer] = (), *,
                 clock: Clock | None = None, connect_timeout: float = 30.0, answer_timeout: float = 15.0,
                 on_event: Callable[[str, MediaEvent], None] | None = None, capacity: int | None = None,
                 empty_room_seconds: float = 60.0, tick: float = 0.005, estimate_upstream: bool = False) -> None:
        self.size = workers or os.cpu_count() or 1
        self.clock: Clock = clock or SystemClock()
        self.on_event = on_event
        self.capacity = capacity
        self.empty_room_seconds = empty_room_seconds
        servers = [ice_server(s) for s in ice_servers]
        self._config = {
            "ice_servers": [{"urls": s.urls, "username": s.username, "credential": s.credential} for s in servers],
            "connect_timeout": connect_timeout, "answer_timeout": answer_timeout, "tick": tick,
            "empty_room_seconds": empty_room_seconds, "max_participants": capacity,
        }
        self.workers: list[WorkerHandle] = []
        self.rooms: dict[str, RoomProxy] = {}
        self.closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._taps = 0

    async def start(self) -> None:
        for index in range(self.size):
            worker = WorkerHandle(self, index)
            await worker.start(self._config)
            self.workers.append(worker)

    async def _restart(self, old: WorkerHandle) -> None:
        if old.proc is not None:
            await old.proc.wait()
        if self.closing:
            return
        fresh = WorkerHandle(self, old.index)
        await fresh.start(self._config)
        self.workers[self.workers.index(old)] = fresh

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("media worker call failed: %r", task.exception())

    def _place(self) -> WorkerHandle:
        """The least loaded live worker with room for one more participant."""
        live = [w for w in self.workers if w.alive and (self.capacity is None or w.participants < self.capacity)]
        if not live:
            raise MediaFull("The media server is at capacity right now; please try again in a minute.")
        return min(live, key=lambda w: (w.participants, len(w.rooms)))

    def _new_tap_id(self) -> int:
        self._taps += 1
        return self._taps

    def room(self, room_id: str, *, audio_only: bool = False, music_mode: bool = False) -> RoomProxy:
        existing = self.rooms.get(check_id(room_id, "room"))
        if existing is not None:
            if existing.audio_only != audio_only or existing.music_mode != music_mode:
                raise Conflict(f"Room {room_id} is already open with other settings.", field="room")
            return existing
        room = self.rooms[room_id] = RoomProxy(self, room_id, audio_only=audio_only, music_mode=music_mode)
        return room

    def _forget(self, room: RoomProxy) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
        if room.worker is not None:
            room.worker.rooms.discard(room)
            room.worker = None

    def _room_event(self, room_id: str, event: MediaEvent) -> None:
        if self.on_event is not None and room_id in self.rooms:
            self.on_event(room_id, event)

    def _packets(self, worker: WorkerHandle, body: bytes) -> None:
        tracks = worker.tracks
        pos, size, end = 0, protocol.PACKET.size, len(body)
        unpack = protocol.PACKET.unpack_from
        while pos + size <= end:
            track, seq, ts, flags, ssrc, skip, n = unpack(body, pos)
            pos += size
            data = body[pos + skip : pos + n]
            pos += n
            known = tracks.get(track)
            room = self.rooms.get(known[0]) if known else None
            if known is not None and room is not None and room._taps:
                unit = PacketUnit(seq, ts, bool(flags & protocol.MARKER), bool(flags & protocol.START), data, ssrc)
                room._packet((worker.index, track), known[1], known[2], known[3], unit)

    async def close(self) -> None:
        self.closing = True
        for room in list(self.rooms.values()):
            await room.close(reason="server shutting down")
        for worker in self.workers:
            await worker.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        workers = [w.last_stats for w in self.workers]
        return {
            "decoders_created": sum(s.get("decoders_created", 0) for s in workers),
            "encoders_created": sum(s.get("encoders_created", 0) for s in workers),
            "rooms": len(self.rooms),
            "participants": sum(len(r.participants) for r in self.rooms.values()),
            "frames_forwarded": sum(s.get("frames_forwarded", 0) for s in workers),
            "packets_out": sum(s.get("packets_out", 0) for s in workers),
            "worker_pids": [w.pid for w in self.workers if w.alive],
            "workers": [{"index": w.index, "pid": w.pid, "alive": w.alive, "participants": w.participants,
                         "rooms": len(w.rooms)} for w in self.workers],
            "room_detail": {room_id: room.stats() for room_id, room in self.rooms.items()},
        }
