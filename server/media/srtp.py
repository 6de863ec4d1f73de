"""SRTP in place: libsrtp works on the relay's own receive and send buffers, no copy per call.

pylibsrtp's ``Session.protect(bytes)`` copies the packet into its buffer and a new ``bytes`` out (two
copies and an allocation per packet). The relay reuses the sessions aiortc keyed from DTLS (so the
replay window and rollover counter stay the ones already in use) and calls libsrtp through pylibsrtp's
own cffi binding on buffers it owns.
"""

from __future__ import annotations

from typing import Any

from pylibsrtp import Error, Session
from pylibsrtp import _binding as _b

_ffi: Any = _b.ffi
_lib: Any = _b.lib

BUFFER_SIZE = 2048  # >= MTU + the largest SRTP trailer (16-byte tag + MKI)
TRAILER = 16 + 16


class PacketBuffer:
    """A C buffer libsrtp can process in place, with a writable memoryview of it for Python code."""

    def __init__(self, size: int = BUFFER_SIZE) -> None:
        self.cdata: Any = _ffi.new("char[]", size)
        self.view = memoryview(_ffi.buffer(self.cdata))
        self._len: Any = _ffi.new("int *")

    def protect(self, session: Session, length: int) -> int:
        """SRTP-protect the RTP packet in ``view[:length]``; returns the protected length."""
        self._len[0] = length
        rc = _lib.srtp_protect(session._srtp[0], self.cdata, self._len)
        if rc:
            raise Error(f"srtp_protect failed ({rc})")
        return int(self._len[0])

    def unprotect(self, session: Session, length: int) -> int:
        """Check and decrypt the SRTP packet in ``view[:length]``; -1 when it does not authenticate."""
        self._len[0] = length
        if _lib.srtp_unprotect(session._srtp[0], self.cdata, self._len):
            return -1
        return int(self._len[0])


def protect_rtcp(session: Session, packet: bytes) -> bytes:
    """RTCP is rare (a few per second per track): pylibsrtp's copying call is fine here."""
    return bytes(session.protect_rtcp(packet))


def unprotect_rtcp(session: Session, packet: bytes) -> bytes | None:
    try:
        return bytes(session.unprotect_rtcp(packet))
    except Error:
        return None
