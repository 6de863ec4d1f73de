"""The one domain error hierarchy.

Services raise these; ``server.web.middlewares`` turns them into RFC 9457
``application/problem+json`` responses, the CLI into one plain line. The
``detail`` is written for a person: say what was wrong and what to do.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DuetError(Exception):
    """Base of every error a user may see."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem object for this error."""
        body: dict[str, Any] = {
            "type": f"https://duet.example/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


class InvalidInput(DuetError):
    status = 422
    code = "invalid_input"
    title = "The request could not be accepted"


class Unauthenticated(DuetError):
    status = 401
    code = "unauthenticated"
    title = "Sign in needed"


class Forbidden(DuetError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class NotFound(DuetError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(DuetError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Gone(DuetError):
    status = 410
    code = "gone"
    title = "No longer available"


class PayloadTooLarge(DuetError):
    status = 413
    code = "too_large"
    title = "Too large"


class RateLimited(DuetError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class Unavailable(DuetError):
    status = 503
    code = "unavailable"
    title = "Temporarily unavailable"


class PolicyViolation(DuetError):
    """A rule from ``policies/`` refuses the action; ``rule`` names it."""

    status = 409
    code = "policy"
    title = "Not allowed by policy"


class CommandError(Exception):
    """A failure a ``duet`` command prints as one line (not an HTTP problem)."""
