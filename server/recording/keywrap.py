"""Wrapping recording data keys: by an AWS KMS key, or to an X25519 public key.

A data key is stored only wrapped, bound to its recording id, so destroying the wrapped key erases the
recording (crypto-shredding, backups included) and a wrapped key moved to another recording will not open.

With ``X25519Wrapper`` a media node holds only the public key: it can record but cannot read any recording;
the private key file lives where review happens. The scheme is a sealed box (ECIES, cf. RFC 9180 HPKE base
mode): ephemeral X25519 -> HKDF-SHA256 (RFC 5869) -> AES-256-GCM, with the recording id and key id as AAD.

Keys rotate without touching media: ``rewrap`` unwraps with the old key and wraps with the new one; a
``X25519KeyFiles`` folder holds the current key pair plus retiring ones until ``retire`` deletes them.
Wrapping calls are synchronous (KMS is one short request per recording): run them with
``asyncio.to_thread`` from async code.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from server.errors import DuetError

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

SCHEME_X25519 = "x25519-hkdf-sha256-aes256gcm-v1"
SCHEME_KMS = "aws-kms-v1"
_HKDF_INFO = b"duet recording data key v1"
_ZERO_NONCE = bytes(12)  # the derived key is used exactly once, so a fixed nonce is safe
_X25519_VERSION = 1


class KeyWrapError(DuetError):
    status = 500
    code = "key_wrap"
    title = "Recording key error"


class KeyUnavailable(KeyWrapError):
    """This node has no private key (or KMS access) able to unwrap: by design on media nodes."""

    status = 503
    code = "key_unavailable"
    title = "Recording key unavailable"


class UnwrapFailed(KeyWrapError):
    """The wrapped key is damaged, or belongs to another recording or another key."""

    code = "key_unwrap_failed"


@dataclass(frozen=True)
class WrappedKey:
    """What the database keeps per recording; deleting it erases the recording."""

    scheme: str
    key_id: str
    blob: bytes


class KeyWrapper(Protocol):
    """Wraps data keys to one current key; unwraps with any key it still holds."""

    @property
    def key_id(self) -> str:
        """The key new recordings are wrapped to."""
        ...

    def wrap(self, data_key: bytes, recording_id: uuid.UUID) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey, recording_id: uuid.UUID) -> bytes:
        """Raises KeyUnavailable (no key here) or UnwrapFailed (wrong recording, damaged, wrong key)."""
        ...


def rewrap(wrapped: WrappedKey, recording_id: uuid.UUID, old: KeyWrapper, new: KeyWrapper) -> WrappedKey:
    """Key rotation for one recording: the media is not touched, only its wrapped key changes."""
    return new.wrap(old.unwrap(wrapped, recording_id), recording_id)


def x25519_key_id(public: X25519PublicKey) -> str:
    """A short stable id: the first 8 bytes of SHA-256 of the raw public key, in hex."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _aad(recording_id: uuid.UUID, key_id: str) -> bytes:
    return b"duet-recording-key\x00" + uuid.UUID(str(recording_id)).bytes + key_id.encode()


def _derive(shared: bytes, eph_raw: bytes, recipient_raw: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_raw + recipient_raw, info=_HKDF_INFO)
    return hkdf.derive(shared)


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class X25519Wrapper:
    """Sealed-box wrapping to ``public``; unwraps only with a private key in ``private_keys``.

    blob = version (1 byte) || ephemeral public key (32) || AES-256-GCM(data key) (32 + 16 tag)
    """

    def __init__(
        self, public: X25519PublicKey, private_keys: dict[str, X25519PrivateKey] | None = None
    ) -> None:
        self._public = public
        self._key_id = x25519_key_id(public)
        self._private = dict(private_keys or {})

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def can_unwrap(self) -> bool:
        return bool(self._private)

    def wrap(self, data_key: bytes, recording_id: uuid.UUID) -> WrappedKey:
        if len(data_key) != 32:
            raise KeyWrapError("A recording data key is 32 bytes.")
        eph = X25519PrivateKey.generate()
        eph_raw = _raw(eph.public_key())
        key = _derive(eph.exchange(self._public), eph_raw, _raw(self._public))
        sealed = AESGCM(key).encrypt(_ZERO_NONCE, data_key, _aad(recording_id, self._key_id))
        return WrappedKey(SCHEME_X25519, self._key_id, bytes([_X25519_VERSION]) + eph_raw + sealed)

    def unwrap(self, wrapped: WrappedKey, recording_id: uuid.UUID) -> bytes:
        if wrapped.scheme != SCHEME_X25519:
            raise UnwrapFailed(f"This key is wrapped with {wrapped.scheme}, not X25519.")
        private = self._private.get(wrapped.key_id)
        if private is None:
            raise KeyUnavailable(
                f"The private key {wrapped.key_id} is not on this node: "
                "recordings are read where the private key is kept."
            )
        blob = wrapped.blob
        if len(blob) != 1 + 32 + 48 or blob[0] != _X25519_VERSION:
            raise UnwrapFailed("The wrapped key is damaged.")
        eph_raw = blob[1:33]
        recipient_raw = _raw(private.public_key())
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(eph_raw))
            key = _derive(shared, eph_raw, recipient_raw)
            return AESGCM(key).decrypt(_ZERO_NONCE, blob[33:], _aad(recording_id, wrapped.key_id))
        except (InvalidTag, ValueError):
            raise UnwrapFailed(
                "The wrapped key does not open: damaged, or not this recording's key."
            ) from None


_PUB = "recording_x25519.pub"
_KEY = "recording_x25519.key"
_RETIRING = re.compile(r"^recording_x25519\.([0-9a-f]{16})\.(pub|key)$")


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, mode)  # in case the umask was stricter or the file system ignores the mode


class X25519KeyFiles:
    """The key pair files in ``<home>/keys`` (embedded default), all created 0600.

    ``recording_x25519.pub`` / ``.key`` is the current pair; ``rotate`` renames it to
    ``recording_x25519.<key id>.pub`` / ``.key`` (retiring) and generates a new current pair. After every
    wrapped key has been rewrapped (``duet keys rotate``), ``retire(key_id)`` deletes the old pair.
    A media node may be given the ``.pub`` file alone.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def ensure(self) -> str:
        """Generate the current key pair if there is none (first start); returns the current key id."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        pub, key = self.folder / _PUB, self.folder / _KEY
        if not pub.exists():
            if key.exists():
                raise KeyWrapError(f"{key} exists without {pub}: restore the public key file.")
            self._generate(pub, key)
        return x25519_key_id(self._load_public(pub))

    def rotate(self) -> tuple[str, str]:
        """Make a new current key pair; returns (old key id, new key id). The old pair stays, retiring."""
        old_id = self.ensure()
        for name in (_PUB, _KEY):
            src = self.folder / name
            if src.exists():
                suffix = name.rsplit(".", 1)[1]
                src.rename(self.folder / f"recording_x25519.{old_id}.{suffix}")
        self._generate(self.folder / _PUB, self.folder / _KEY)
        return old_id, x25519_key_id(self._load_public(self.folder / _PUB))

    def retire(self, key_id: str) -> None:
        """Delete a retiring key pair: wrapped keys still made for it will never open again."""
        for suffix in ("pub", "key"):
            with contextlib.suppress(FileNotFoundError):
                (self.folder / f"recording_x25519.{key_id}.{suffix}").unlink()

    def key_ids(self) -> list[str]:
        """Current key id first, then the retiring ones."""
        ids = [x25519_key_id(self._load_public(self.folder / _PUB))] if (self.folder / _PUB).exists() else []
        for name in sorted(os.listdir(self.folder)) if self.folder.exists() else []:
            m = _RETIRING.match(name)
            if m and m.group(2) == "pub" and m.group(1) not in ids:
                ids.append(m.group(1))
        return ids

    def public_wrapper(self) -> X25519Wrapper:
        """For media nodes: wraps to the current public key; cannot unwrap."""
        return X25519Wrapper(self._load_public(self.folder / _PUB))

    def following_wrapper(self) -> CurrentKeyWrapper:
        """For a long-running media node: wraps to the public key file as it is at each new recording."""
        return CurrentKeyWrapper(self)

    def wrapper(self) -> X25519Wrapper:
        """Wraps to the current key; unwraps with every private key file present (current and retiring)."""
        privates: dict[str, X25519PrivateKey] = {}
        for path in [self.folder / _KEY, *sorted(self.folder.glob("recording_x25519.*.key"))]:
            if path.exists():
                private = self._load_private(path)
                privates[x25519_key_id(private.public_key())] = private
        return X25519Wrapper(self._load_public(self.folder / _PUB), privates)

    def retiring_wrapper(self, key_id: str) -> X25519Wrapper:
        """The wrapper of one retiring key (to unwrap during rotation)."""
        path = self.folder / f"recording_x25519.{key_id}.key"
        if not path.exists():
            raise KeyUnavailable(f"No private key file for key {key_id}.")
        private = self._load_private(path)
        return X25519Wrapper(private.public_key(), {key_id: private})

    @staticmethod
    def _generate(pub: Path, key: Path) -> None:
        private = X25519PrivateKey.generate()
        _write_new(
            key,
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            0o600,
        )
        _write_new(
            pub,
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            0o600,
        )

    @staticmethod
    def _load_public(path: Path) -> X25519PublicKey:
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyWrapError(f"Cannot read the recording public key {path}: {exc}.") from None
        if not isinstance(key, X25519PublicKey):
            raise KeyWrapError(f"{path} is not an X25519 public key.")
        return key

    @staticmethod
    def _load_private(path: Path) -> X25519PrivateKey:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise KeyWrapError(f"Cannot read the recording private key {path}: {exc}.") from None
        if not isinstance(key, X25519PrivateKey):
            raise KeyWrapError(f"{path} is not an X25519 private key.")
        return key


class KmsWrapper:
    """Wrapping by an AWS KMS key (Encrypt/Decrypt), the recording id as EncryptionContext.

    KMS keeps every key version itself, so rotation of the KMS key needs nothing here; moving to another
    KMS key is ``rewrap(w, rid, KmsWrapper(c, old), KmsWrapper(c, new))``.
    """

    def __init__(self, client: KMSClient, key_id: str) -> None:
        self._client = client
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        return self._key_id

    @staticmethod
    def _context(recording_id: uuid.UUID) -> dict[str, str]:
        return {"duet:recording": str(uuid.UUID(str(recording_id)))}

    def wrap(self, data_key: bytes, recording_id: uuid.UUID) -> WrappedKey:
        if len(data_key) != 32:
            raise KeyWrapError("A recording data key is 32 bytes.")
        try:
            resp = self._client.encrypt(
                KeyId=self._key_id, Plaintext=data_key, EncryptionContext=self._context(recording_id)
            )
        except (BotoCoreError, ClientError) as exc:
            raise _kms_error(exc) from None
        return WrappedKey(SCHEME_KMS, self._key_id, resp["CiphertextBlob"])

    def unwrap(self, wrapped: WrappedKey, recording_id: uuid.UUID) -> bytes:
        if wrapped.scheme != SCHEME_KMS:
            raise UnwrapFailed(f"This key is wrapped with {wrapped.scheme}, not KMS.")
        try:
            resp = self._client.decrypt(
                KeyId=wrapped.key_id,
                CiphertextBlob=wrapped.blob,
                EncryptionContext=self._context(recording_id),
            )
        except (BotoCoreError, ClientError) as exc:
            raise _kms_error(exc) from None
        return resp["Plaintext"]


def _kms_error(exc: BotoCoreError | ClientError) -> KeyWrapError:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"InvalidCiphertextException", "IncorrectKeyException"}:
            return UnwrapFailed("KMS refused the wrapped key: damaged, or not this recording's key.")
        if code in {
            "AccessDeniedException",
            "DisabledException",
            "NotFoundException",
            "KMSInvalidStateException",
        }:
            return KeyUnavailable(f"The KMS key cannot be used ({code}).")
        return KeyUnavailable(f"KMS failed ({code or 'error'}); retry later.")
    return KeyUnavailable(f"KMS cannot be reached ({type(exc).__name__}); retry later.")


class CurrentKeyWrapper:
    """Wraps each new recording's data key to the current public key file, read at that moment.

    So ``duet keys rotate`` takes effect in a running ``duet serve`` at once: no recording made after a
    rotation is wrapped to the old key, which ``--retire`` may delete. It cannot unwrap (a media node).
    """

    def __init__(self, files: X25519KeyFiles) -> None:
        self._files = files

    @property
    def key_id(self) -> str:
        return self._files.public_wrapper().key_id

    def wrap(self, data_key: bytes, recording_id: uuid.UUID) -> WrappedKey:
        return self._files.public_wrapper().wrap(data_key, recording_id)

    def unwrap(self, wrapped: WrappedKey, recording_id: uuid.UUID) -> bytes:
        raise KeyUnavailable("A media node holds no private key: recordings are read where the private key is kept.")
