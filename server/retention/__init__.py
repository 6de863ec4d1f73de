"""Retention: policies as data (storage_policies/), erase dates, holds, crypto-shredding, Art. 30 record."""

from server.retention.loader import PolicyFileError, load_policies
from server.retention.policies import Policy, PolicySet
from server.retention.processing_record import processing_record, processing_record_dict
from server.retention.rules import RecordingFacts, choose_policy, erase_date

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
