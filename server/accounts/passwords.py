"""Argon2id password hashing (argon2-cffi's defaults follow RFC 9106's second recommendation)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.errors import InvalidInput

MIN_LENGTH = 12
_hasher = PasswordHasher()


@cache
def _dummy() -> str:
    """A hash checked when the email is unknown, so timing does not reveal accounts.

    Made on first use, not at import: a hash costs about 0.3 s, which every command would pay.
    """
    return _hasher.hash("not-a-real-password-0000")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"The password must be at least {MIN_LENGTH} characters long.", field="password")
    if len(password) > 1024:
        raise InvalidInput("The password must be at most 1024 characters long.", field="password")


def hash_password(password: str) -> str:
    check_strength(password)
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False
