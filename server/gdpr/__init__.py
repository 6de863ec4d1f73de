"""Data subjects' rights (UK GDPR Art. 15 and 17): the subject access bundle and erasure on request.

Both work per client (the child or adult who has sessions) together with the guardians linked only to
them. What may be erased, and what must be kept and until when, comes from storage_policies/ (each
purpose's ``[erasure_request]``) and from safeguarding holds, never from the person running the command.
"""

from server.gdpr.erasure import ClientErasure, ErasureReport
from server.gdpr.subject_access import AccessBundle, SubjectAccess

__all__ = ["AccessBundle", "ClientErasure", "ErasureReport", "SubjectAccess"]
