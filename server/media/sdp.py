"""SDP text edits the relay needs on top of aiortc: Opus parameters for music mode.

aiortc copies none of the remote Opus fmtp parameters into its answer or offer,
so music mode's stereo high-bitrate Opus (RFC 7587 6.1: stereo, sprop-stereo,
maxaveragebitrate) is written into the SDP we send, on every audio m-line.
"""

from __future__ import annotations

import re

MUSIC_OPUS_PARAMS = {"stereo": "1", "sprop-stereo": "1", "maxaveragebitrate": "256000", "useinbandfec": "1"}
SPEECH_OPUS_PARAMS = {"useinbandfec": "1", "minptime": "10"}

_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/48000(?:/2)?\s*$", re.IGNORECASE)


def opus_params(sdp: str) -> dict[str, str]:
    """The fmtp parameters of the first Opus payload type in ``sdp`` (empty if none)."""
    lines = sdp.splitlines()
    for line in lines:
        m = _RTPMAP.match(line)
        if m:
            prefix = f"a=fmtp:{m.group(1)} "
            for other in lines:
                if other.startswith(prefix):
                    return dict(p.split("=", 1) for p in other[len(prefix) :].strip().split(";") if "=" in p)
            return {}
    return {}


def set_opus_params(sdp: str, params: dict[str, str]) -> str:
    """Merge ``params`` into the fmtp line of every Opus payload type (adding one if missing)."""
    lines = sdp.split("\r\n") if "\r\n" in sdp else sdp.split("\n")
    eol = "\r\n" if "\r\n" in sdp else "\n"
    opus_pts = {m.group(1) for line in lines if (m := _RTPMAP.match(line))}
    out: list[str] = []
    done: set[str] = set()
    for line in lines:
        if line.startswith("a=fmtp:"):
            pt, _, rest = line[len("a=fmtp:") :].partition(" ")
            if pt in opus_pts:
                current = dict(p.split("=", 1) for p in rest.strip().split(";") if "=" in p)
                current.update(params)
                line = f"a=fmtp:{pt} " + ";".join(f"{k}={v}" for k, v in current.items())
                done.add(pt)
        out.append(line)
        m = _RTPMAP.match(line)
        if m and m.group(1) not in done and not any(x.startswith(f"a=fmtp:{m.group(1)} ") for x in lines):
            out.append(f"a=fmtp:{m.group(1)} " + ";".join(f"{k}={v}" for k, v in params.items()))
            done.add(m.group(1))
    return eol.join(out)


def media_kinds(sdp: str) -> list[str]:
    """The kinds of the m-lines in ``sdp``, in order."""
    return [line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")]
