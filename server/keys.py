"""Secrets generated on first start and kept in ``<home>/keys`` (mode 0600), never in git or logs.

The app secret signs link cookies, seals TOTP secrets at rest and keys the audit chain and its checkpoints
(``derive``): the database never holds it, so someone who can write the database cannot re-hash history.
The recording key pair lives beside it
(``server.recording.keywrap.X25519KeyFiles``); production keeps its private half off the media nodes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SECRET_FILE = "app_secret"  # noqa: S105  (a file name, not a secret)


def private_folder(path: Path) -> Path:
    """Create ``path`` and every missing parent 0700 (``mkdir(mode=)`` sets only the last one's mode)."""
    missing: list[Path] = []
    level = path
    while not level.exists():
        missing.append(level)
        level = level.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass  # made by another process meanwhile
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file readable only by its owner; never overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class AppKeys:
    secret: bytes

    @classmethod
    def ensure(cls, folder: Path) -> AppKeys:
        """Load the app secret from ``folder``, creating the folder (0700) and secret (0600) if absent."""
        private_folder(folder)
        path = folder / SECRET_FILE
        if not path.exists():
            try:
                write_private(path, base64.b64encode(secrets.token_bytes(32)))
            except FileExistsError:
                pass  # another process made it first
        raw = base64.b64decode(path.read_bytes().strip())
        if len(raw) < 32:
            raise ValueError(f"{path} is damaged: expected 32 random bytes")
        return cls(raw)

    def _subkey(self, purpose: str) -> bytes:
        return hmac.new(self.secret, purpose.encode(), hashlib.sha256).digest()

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (the audit chain, its checkpoints), independent of the others."""
        return self._subkey("derive:" + purpose)

    def sign(self, purpose: str, message: str) -> str:
        mac = hmac.new(self._subkey(purpose), message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def verify(self, purpose: str, message: str, signature: str) -> bool:
        return constant_time_equal(self.sign(purpose, message), signature)

    def seal(self, purpose: str, plaintext: str) -> str:
        nonce = secrets.token_bytes(12)
        box = AESGCM(self._subkey("seal:" + purpose)).encrypt(nonce, plaintext.encode(), purpose.encode())
        return base64.urlsafe_b64encode(nonce + box).decode()

    def unseal(self, purpose: str, sealed: str) -> str:
        raw = base64.urlsafe_b64decode(sealed.encode())
        try:
            return AESGCM(self._subkey("seal:" + purpose)).decrypt(raw[:12], raw[12:], purpose.encode()).decode()
        except InvalidTag:
            raise ValueError("sealed value does not open with this installation's key") from None


def constant_time_equal(expected: str, given: str) -> bool:
    """Compare secrets without leaking timing, for any text a client sends (``hmac.compare_digest`` raises
    TypeError on non-ASCII ``str``, which would turn a forged header into a server error)."""
    return hmac.compare_digest(expected.encode("utf-8", "surrogateescape"), given.encode("utf-8", "surrogateescape"))


def token_hash(token: str) -> str:
    """How bearer tokens (login cookies, link tokens) are stored: SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A bearer token with 192 random bits."""
    return secrets.token_urlsafe(24)
