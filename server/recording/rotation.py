"""Key rotation: re-wrap every data key under a new key-encryption key; the media is never touched.

``duet keys rotate`` makes a new X25519 pair, re-wraps each live recording's data key (unwrapped with the
private keys present, wrapped to the new public key) and, with ``--retire``, deletes the old pairs once
nothing needs them. Each re-wrap is audited; erased recordings have no key to re-wrap.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.log import Actor, AuditLog
from server.errors import Conflict
from server.recording.keywrap import WrappedKey, X25519KeyFiles, rewrap
from server.recording.models import Recording


@dataclass(frozen=True)
class Rotation:
    old_key_id: str
    new_key_id: str
    rewrapped: int
    retired: tuple[str, ...]


async def rotate_keys(session: AsyncSession, files: X25519KeyFiles, audit: AuditLog, actor: Actor, *,
                      retire: bool) -> Rotation:
    old_id, new_id = files.rotate()
    unwrapper = files.wrapper()  # every private key present: current and retiring
    new = files.public_wrapper()
    count = 0
    rows = (await session.scalars(select(Recording).where(Recording.wrapped_key.is_not(None)))).all()
    for row in rows:
        if row.key_id == new_id or row.wrapped_key is None:
            continue
        wrapped = rewrap(WrappedKey(row.key_scheme, row.key_id, row.wrapped_key), row.id, unwrapper, new)
        previous = row.key_id
        row.key_scheme, row.key_id, row.wrapped_key = wrapped.scheme, wrapped.key_id, wrapped.blob
        await audit.record(session, actor, "recording.key_rewrapped", f"recording:{row.id}",
                           {"from": previous, "to": new_id})
        count += 1
    await session.commit()
    retired: list[str] = []
    if retire:
        for key_id in files.key_ids()[1:]:
            still = await session.scalar(select(func.count()).select_from(Recording).where(
                Recording.key_id == key_id, Recording.wrapped_key.is_not(None)))
            if still:  # made in the moment of the rotation: run `duet keys rotate --retire` again
                raise Conflict(f"{still} recording(s) are still wrapped to key {key_id}; it was not retired. "
                               "Run `duet keys rotate --retire` again.")
            files.retire(key_id)
            await audit.record(session, actor, "recording.key_retired", f"key:{key_id}", {"replaced_by": new_id})
            retired.append(key_id)
        await session.commit()
    return Rotation(old_id, new_id, count, tuple(retired))
