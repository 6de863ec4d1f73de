"""``Subject``: the one way to name a person across tables, links, audit events and the live session.

A subject is ``<kind>:<id>`` (``staff:3``, ``guardian:7``, ``client:2``). It is a ``str`` subclass so that
it goes into string columns and JSON as it is, but it can only be built valid: ``Subject.staff(3)`` or
``Subject.parse(text)``, which refuses anything else (a wrong kind, a non-ASCII digit, an id over 64 bits)
with a ``ValueError`` a caller turns into its own error.
"""

from __future__ import annotations

from typing import Literal, cast

Kind = Literal["staff", "guardian", "client"]
KINDS: tuple[Kind, ...] = ("staff", "guardian", "client")
MAX_ID = 2**63 - 1


class Subject(str):
    """A person reference such as ``guardian:7``; compares and hashes as its text."""

    __slots__ = ()

    def __new__(cls, text: str) -> Subject:
        kind, sep, raw = text.partition(":")
        if not sep or kind not in KINDS:
            raise ValueError(f"{text!r} is not a person reference like client:4 or guardian:3")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > MAX_ID:
            raise ValueError(f"{text!r} is not a person reference like client:4 or guardian:3")
        return super().__new__(cls, f"{kind}:{int(raw)}")

    @classmethod
    def of(cls, kind: Kind, ident: int) -> Subject:
        return cls(f"{kind}:{ident}")

    @classmethod
    def staff(cls, ident: int) -> Subject:
        return cls.of("staff", ident)

    @classmethod
    def guardian(cls, ident: int) -> Subject:
        return cls.of("guardian", ident)

    @classmethod
    def client(cls, ident: int) -> Subject:
        return cls.of("client", ident)

    @classmethod
    def parse(cls, text: str) -> Subject | None:
        """``text`` as a subject, or None when it is not one (actor refs such as ``system`` or ``cli``)."""
        try:
            return cls(text)
        except ValueError:
            return None

    @property
    def kind(self) -> Kind:
        return cast(Kind, self.partition(":")[0])

    @property
    def id(self) -> int:
        return int(self.partition(":")[2])

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    @property
    def is_family(self) -> bool:
        """A guardian or a client: someone who joins by link, as opposed to staff."""
        return self.kind != "staff"
