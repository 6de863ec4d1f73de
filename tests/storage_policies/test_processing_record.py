"""The Art. 30 record says what the policy files make Duet do."""

from __future__ import annotations

import json
from pathlib import Path

from server.storage_policies import load_policies, processing_record, processing_record_dict
from server.storage_policies.processing_record import CONTROLLER_PLACEHOLDER

SHIPPED = Path(__file__).resolve().parents[2] / "storage_policies"


def test_text_record_lists_every_purpose_with_retention_basis_and_recipients() -> None:
    text = processing_record(load_policies(SHIPPED), controller="Cambridgeshire Music, Cambridge")
    assert text.startswith("Record of processing activities (UK GDPR Article 30)")
    assert "Controller: Cambridgeshire Music, Cambridge" in text
    for name in (
        "Monitoring and safeguarding of live tuition sessions",
        "Clinical record of music therapy with children and young people",
        "Clinical record of music therapy with adults",
        "Safeguarding and child protection records",
    ):
        assert name in text
    assert "kept until 28 days after the session; then erased (crypto-shredded)" in text
    assert "the 26th birthday (only if aged 17 at the last session)" in text
    assert "Art. 9(2)(h)" in text and "Schedule 1, Part 2, paragraph 18" in text
    assert "Recipients (roles with access): safeguarding" in text
    assert "AES-256-GCM" in text and "crypto-shredding" in text and "wrapped" in text
    # The safeguarding purpose, which wins over the others, comes first.
    assert text.index("Safeguarding and child protection records") < text.index("live tuition sessions")


def test_missing_controller_shows_a_placeholder() -> None:
    assert f"Controller: {CONTROLLER_PLACEHOLDER}" in processing_record(load_policies(SHIPPED))


def test_dict_form_is_json_serialisable_and_complete() -> None:
    data = processing_record_dict(load_policies(SHIPPED), controller="X")
    round_trip = json.loads(json.dumps(data))
    assert round_trip["controller"] == "X"
    purposes = {p["id"]: p for p in round_trip["purposes"]}
    assert set(purposes) == {
        "safeguarding-concern",
        "therapy-adults",
        "therapy-children",
        "tuition-monitoring",
    }
    tuition = purposes["tuition-monitoring"]
    assert tuition["lawful_basis"]["article_9"] is None
    assert tuition["recipients"] == ["manager", "safeguarding"]
    assert tuition["next_review"] == "2027-04-01"
    assert purposes["therapy-children"]["applies_to"]["ages_at_session"] == ["under_18"]
    assert round_trip["security_measures"]
