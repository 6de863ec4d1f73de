"""Storage policies as data (storage_policies/*.toml): their model, the loader that checks them, the pure rules
that choose a recording's purpose and erase date, and the UK GDPR Art. 30 record built from them."""

from server.storage_policies.loader import PolicyFileError, load_policies
from server.storage_policies.models import Policy, PolicySet
from server.storage_policies.processing_record import processing_record, processing_record_dict
from server.storage_policies.rules import RecordingFacts, choose_policy, erase_date

__all__ = [
    "Policy",
    "PolicyFileError",
    "PolicySet",
    "RecordingFacts",
    "choose_policy",
    "erase_date",
    "load_policies",
    "processing_record",
    "processing_record_dict",
]
