"""Key rotation re-wraps every data key to a new pair; the old pair can then be retired."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor
from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.recording.keywrap import WrappedKey, X25519KeyFiles
from server.recording.models import Recording
from server.recording.rotation import rotate_keys
from server.recording.writer import begin_recording
from server.services import Services
from tests.support.org import Org


async def test_rotation_rewraps_every_key_and_the_media_key_is_unchanged(
    org: Org, services: Services, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    files = X25519KeyFiles(tmp_path / "keys")
    first_id = files.ensure()
    rid = uuid.uuid4()
    new = begin_recording(rid, files.public_wrapper())
    data_key = files.wrapper().unwrap(new.wrapped_key, rid)
    async with sessionmaker() as s:
        s.add(Recording(id=rid, booking_id=org.booking_id, status="stopped", key_scheme=new.wrapped_key.scheme,
                        key_id=new.wrapped_key.key_id, wrapped_key=new.wrapped_key.blob, header=new.header.to_bytes(),
                        store_key=str(rid), started_by="staff:1", started_at=clock.now()))
        await s.commit()
    async with sessionmaker() as s:
        done = await rotate_keys(s, files, services.audit, Actor("cli", "cli"), retire=True)
    assert (done.old_key_id, done.rewrapped, done.retired) == (first_id, 1, (first_id,))
    assert files.key_ids() == [done.new_key_id]  # the old private key is gone
    async with sessionmaker() as s:
        row = await s.get(Recording, rid)
        assert row is not None and row.key_id == done.new_key_id and row.wrapped_key is not None
        assert files.wrapper().unwrap(WrappedKey(row.key_scheme, row.key_id, row.wrapped_key), rid) == data_key
        audited = (await s.execute(select(AuditEvent).where(AuditEvent.action == "recording.key_rewrapped"))
                   ).scalar_one()
    assert audited.target == f"recording:{rid}"


async def test_a_running_media_node_wraps_to_the_new_key_at_once_and_retirement_is_audited(
    org: Org, services: Services, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    files = X25519KeyFiles(tmp_path / "keys")
    first_id = files.ensure()
    media_node = files.following_wrapper()  # built once at start-up, as `duet serve` does
    assert media_node.key_id == first_id
    async with sessionmaker() as s:
        done = await rotate_keys(s, files, services.audit, Actor("cli", "cli"), retire=True)
        retired = (await s.execute(select(AuditEvent).where(AuditEvent.action == "recording.key_retired"))
                   ).scalar_one()
    assert retired.target == f"key:{first_id}"
    rid = uuid.uuid4()
    new = begin_recording(rid, media_node)  # a recording started after the rotation, without a restart
    assert new.wrapped_key.key_id == done.new_key_id != first_id
    assert len(files.wrapper().unwrap(new.wrapped_key, rid)) == 32  # readable with the keys that remain
