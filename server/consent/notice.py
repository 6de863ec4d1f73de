"""The privacy notice shown on the consent page, in plain language, built from the retention policies.

"How long" comes from storage_policies/*.toml (the same files that decide erasure), so the notice cannot
promise a period the system does not keep. The version is derived from the text: when the wording or a
policy changes, consents record the new version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from server.storage_policies.loader import load_policies


@dataclass(frozen=True)
class NoticeSection:
    heading: str
    text: str


@dataclass(frozen=True)
class PrivacyNotice:
    version: str
    sections: tuple[NoticeSection, ...]

    @classmethod
    def build(cls, organisation: str, policies_dir: Path) -> PrivacyNotice:
        kept = []
        for policy in load_policies(policies_dir):
            roles = ", ".join(policy.access_roles) or "nobody"
            kept.append(f"{policy.name}: {policy.retention.describe()} (seen only by: {roles}).")
        sections = (
            NoticeSection("What is recorded", (
                "The sound and picture of the live online session, as everyone in it sends them, and the "
                "session chat. Nothing is recorded unless everyone who can be seen or heard has agreed. "
                "Everyone in the session can see whether recording is on.")),
            NoticeSection("Where it is kept", (
                f"{organisation} encrypts each recording while it is made, with its own key. The files are kept "
                "in our own storage; without our private key nobody can read them, including the storage "
                "provider.")),
            NoticeSection("Who can see it", (
                "Only our safeguarding lead, who must give a reason every time, and every viewing is logged. "
                "Tutors, therapists and office staff cannot play recordings. If you agree to teaching "
                "feedback, the practitioner may go through parts of it with your family.")),
            NoticeSection("How long it is kept", " ".join(kept)),
            NoticeSection("Your choices", (
                "You can agree to any of the three uses, or none. You can withdraw at any time with one "
                "click on this page; it takes effect at once, during a live session too, and the recording "
                "stops. Withdrawing does not affect sessions themselves.")),
        )
        digest = hashlib.sha256("\n".join(f"{s.heading}\n{s.text}" for s in sections).encode()).hexdigest()
        return cls(version=f"n-{digest[:12]}", sections=sections)
