"""The UK GDPR Art. 30 record of processing activities, generated from the policy files.

Why generated: the record must say what Duet actually does. Rendering it from the same files that drive
erasure means the document a controller shows the ICO cannot drift from the code (Art. 30(1)(a)-(g),
Art. 30(4): made available to the supervisory authority on request). ``duet retention record [--json]``
prints it.
"""

from __future__ import annotations

from typing import Any

from server.storage_policies.models import Policy, PolicySet

CONTROLLER_PLACEHOLDER = "[controller: organisation name, address, DPO contact - set DUET_ORGANISATION]"

# Art. 32 technical measures, as implemented by server/recording (docs/recording-format.md).
SECURITY_MEASURES: tuple[str, ...] = (
    (
        "Each recording has its own random 256-bit data key; media is sealed in chunks of at most 2 seconds "
        "with AES-256-GCM (authenticated header, per-chunk nonce, truncation and reordering detected)."
    ),
    (
        "Data keys are stored only wrapped, by a KMS key or to an X25519 public key whose private half is "
        "kept off the media nodes, so a media node can record but cannot read recordings."
    ),
    (
        "Erasure is crypto-shredding: the object is deleted and its wrapped key destroyed, which also makes "
        "every backup copy unreadable."
    ),
    (
        "Recording only while every person present holds consent (the consent gate); every view, export, "
        "erasure and hold is written to a hash-chained audit log."
    ),
    (
        "Recordings are viewed only by the roles listed per purpose; the safeguarding lead signs in with a "
        "second factor and gives a reason for every view."
    ),
    "Transport encryption: DTLS-SRTP for live media, HTTPS for the web application.",
)


def _purpose_dict(p: Policy) -> dict[str, Any]:
    m = p.applies_to
    lb = p.lawful_basis
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "applies_to": {
            "kinds": sorted(k.value for k in m.kinds),
            "ages_at_session": sorted(a.value for a in m.ages),
            "provisions": sorted(v.value for v in m.provisions),
            "flagged_for_safeguarding": sorted(m.flagged_for_safeguarding),
            "priority": p.priority,
        },
        "data_subjects": list(p.data_subjects),
        "data_categories": list(p.data_categories),
        "recipients": list(p.access_roles),
        "retention": p.retention.describe(),
        "lawful_basis": {
            "article_6": lb.article_6,
            "article_6_reason": lb.article_6_reason,
            "article_9": lb.article_9,
            "article_9_reason": lb.article_9_reason,
            "dpa_2018_condition": lb.dpa_2018_condition,
        },
        "erasure_on_request": {
            "action": "erase" if p.erasure_request.erase else "keep",
            "reason": p.erasure_request.reason,
        },
        "next_review": p.next_review.isoformat(),
        "sources": list(p.sources),
        "policy_file": p.source_file,
    }


def processing_record_dict(policies: PolicySet, controller: str = "") -> dict[str, Any]:
    """The Art. 30 record as plain data (for ``--json``)."""
    return {
        "controller": controller.strip() or CONTROLLER_PLACEHOLDER,
        "international_transfers": (
            "none by Duet itself; depends on where the operator hosts the recording store"
        ),
        "security_measures": list(SECURITY_MEASURES),
        "purposes": [_purpose_dict(p) for p in sorted(policies, key=lambda p: (-p.priority, p.id))],
    }


def processing_record(policies: PolicySet, controller: str = "") -> str:
    """The Art. 30 record rendered as plain text, one section per purpose."""
    data = processing_record_dict(policies, controller)
    lines = [
        "Record of processing activities (UK GDPR Article 30)",
        "",
        f"Controller: {data['controller']}",
        f"International transfers: {data['international_transfers']}",
        "",
    ]
    for n, p in enumerate(data["purposes"], start=1):
        lb = p["lawful_basis"]
        a = p["applies_to"]
        lines += [
            f"{n}. {p['name']} ({p['id']})",
            f"   Purpose: {p['description']}",
            (
                f"   Applies to (priority {a['priority']}): {', '.join(a['kinds'])} recordings; clients "
                f"{', '.join(a['ages_at_session'])}; provision {', '.join(a['provisions'])}; flagged for "
                f"safeguarding: {', '.join('yes' if f else 'no' for f in a['flagged_for_safeguarding'])}"
            ),
            f"   Data subjects: {'; '.join(p['data_subjects'])}",
            f"   Categories of data: {'; '.join(p['data_categories'])}",
            f"   Recipients (roles with access): {', '.join(p['recipients'])}",
            f"   Retention: {p['retention']}",
            f"   Lawful basis: Art. {lb['article_6']}: {lb['article_6_reason']}",
        ]
        if lb["article_9"]:
            lines.append(f"   Special category condition: Art. {lb['article_9']}: {lb['article_9_reason']}")
        if lb["dpa_2018_condition"]:
            lines.append(f"   DPA 2018 condition: {lb['dpa_2018_condition']}")
        er = p["erasure_on_request"]
        lines += [
            f"   On a request for erasure: {'erased' if er['action'] == 'erase' else 'kept'}: {er['reason']}",
            f"   Sources: {'; '.join(p['sources'])}",
            f"   Next review: {p['next_review']} (file {p['policy_file']})",
            "",
        ]
    lines.append("Security measures (Article 32):")
    lines += [f" - {m}" for m in data["security_measures"]]
    return "\n".join(lines) + "\n"
