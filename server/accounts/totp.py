"""TOTP second factor (RFC 6238). Secrets are sealed with the app key before they reach the database."""

from __future__ import annotations

import hmac

import pyotp

from server.keys import AppKeys

PURPOSE = "totp"
ISSUER = "Duet"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


STEP_SECONDS = 30
_DIGITS = frozenset("0123456789")


def matching_step(secret: str, code: str, at_unix: float) -> int | None:
    """The time step (unix time // 30) whose code ``code`` is: the current one or one either side, for
    clock drift on phones; None when it matches none. The caller refuses a step already used."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not set(code) <= _DIGITS:  # ASCII digits only: "²" is a digit to str.isdigit
        return None
    otp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    now_step = int(at_unix) // STEP_SECONDS
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(otp.generate_otp(step), code):
            return step
    return None


def code_is_valid(secret: str, code: str, at_unix: float) -> bool:
    return matching_step(secret, code, at_unix) is not None


def seal(keys: AppKeys, secret: str) -> str:
    return keys.seal(PURPOSE, secret)


def unseal(keys: AppKeys, sealed: str) -> str:
    return keys.unseal(PURPOSE, sealed)
