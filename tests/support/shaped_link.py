"""A real, slow network link for tests: a network namespace joined by a veth pair shaped with tc.

The kernel here has no netem (no added delay or random loss), so the link is shaped with a token bucket
(tbf) on both ends: a hard rate limit whose queue adds delay under load and drops what overflows, as a
congested home connection does. Creating it needs root (CI runs as root); the namespace is removed on exit.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class NoShapedLink(RuntimeError):
    """Network namespaces or tc are not available to this user."""


@dataclass(frozen=True)
class ShapedLink:
    namespace: str
    host_ip: str  # the server listens here
    guest_ip: str  # the client inside the namespace has this address
    rate_kbit: int


def _ip(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    if done.returncode:
        raise NoShapedLink(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")


@contextmanager
def shaped_link(rate_kbit: int) -> Iterator[ShapedLink]:
    """A link of ``rate_kbit`` each way, with a queue of about 300 ms."""
    tag = os.getpid() % 10_000
    name, host_if, guest_if = f"duet-{tag}", f"dh{tag}", f"dg{tag}"
    net = f"10.231.{tag % 250}"
    link = ShapedLink(name, f"{net}.1", f"{net}.2", rate_kbit)
    try:
        _ip("ip", "netns", "add", name)
        _ip("ip", "link", "add", host_if, "type", "veth", "peer", "name", guest_if)
        _ip("ip", "link", "set", guest_if, "netns", name)
        _ip("ip", "addr", "add", f"{link.host_ip}/30", "dev", host_if)
        _ip("ip", "link", "set", host_if, "up")
        _ip("ip", "netns", "exec", name, "ip", "addr", "add", f"{link.guest_ip}/30", "dev", guest_if)
        _ip("ip", "netns", "exec", name, "ip", "link", "set", guest_if, "up")
        _ip("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        shape = ("root", "tbf", "rate", f"{rate_kbit}kbit", "burst", "4kb", "latency", "300ms")
        _ip("tc", "qdisc", "add", "dev", host_if, *shape)  # downstream, towards the family
        _ip("ip", "netns", "exec", name, "tc", "qdisc", "add", "dev", guest_if, *shape)  # upstream
        yield link
    except FileNotFoundError as exc:
        raise NoShapedLink(f"{exc.filename} is not installed") from None
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
