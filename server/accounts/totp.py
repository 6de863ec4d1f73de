"""TOTP second factor (RFC 6238). Secrets are sealed with the app key before they reach the database."""

from __future__ import annotations

import pyotp

from server.keys import AppKeys

PURPOSE = "totp"
ISSUER = "Duet"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def code_is_valid(secret: str, code: str, at_unix: float) -> bool:
    """Accept the current code and one step either side, for clock drift on phones."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return False
    return pyotp.TOTP(secret).verify(code, for_time=int(at_unix), valid_window=1)


def seal(keys: AppKeys, secret: str) -> str:
    return keys.seal(PURPOSE, secret)


def unseal(keys: AppKeys, sealed: str) -> str:
    return keys.unseal(PURPOSE, sealed)
