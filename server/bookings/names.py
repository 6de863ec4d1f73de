"""Names for subjects (``staff:3``, ``guardian:7``, ``client:2``): one query per kind of person.

For pages that show who did something (who joined a session, who raised or discussed a concern); the
caller decides who may see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Staff
from server.people.models import Client, Guardian
from server.subjects import Kind, Subject

Person = TypeVar("Person", Staff, Guardian, Client)


async def subject_names(session: AsyncSession, subjects: Iterable[str]) -> dict[str, str]:
    """``{subject: name}`` for every subject that names someone we hold; others are left out."""
    wanted: dict[Kind, set[int]] = {}
    for text in subjects:
        if (subject := Subject.parse(text)) is not None:
            wanted.setdefault(subject.kind, set()).add(subject.id)
    return (await _named(session, "staff", Staff, wanted.get("staff"))
            | await _named(session, "guardian", Guardian, wanted.get("guardian"))
            | await _named(session, "client", Client, wanted.get("client")))


async def _named(session: AsyncSession, kind: Kind, model: type[Person], ids: set[int] | None) -> dict[str, str]:
    if not ids:
        return {}
    people = (await session.execute(select(model).where(model.id.in_(ids)))).scalars()
    return {Subject.of(kind, person.id): person.name for person in people}
