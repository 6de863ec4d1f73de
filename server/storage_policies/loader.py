"""Load and validate ``storage_policies/*.toml``: a bad file stops start-up with one clear error.

Why so strict: a typo in a retention file either erases recordings too early (unlawful destruction of
clinical or child-protection records) or keeps them too long (UK GDPR Art. 5(1)(e) storage limitation).
So unknown keys, missing fields, impossible periods, ties between purposes and any recording that no
purpose covers are all refused before the server starts. The grammar is documented in docs/retention.md.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from server.accounts.models import Role
from server.errors import InvalidInput
from server.storage_policies.models import (
    AgeBand,
    Anchor,
    AtEnd,
    ErasureRequest,
    LawfulBasis,
    Match,
    Period,
    Policy,
    PolicySet,
    ProvisionType,
    RecordingKind,
    RetentionRule,
    all_combinations,
)

E = TypeVar("E")


class PolicyFileError(InvalidInput):
    """One retention policy file is wrong: ``file``, ``field`` and ``reason`` say where and why."""

    code = "policy_file"
    title = "A retention policy file is not valid"

    def __init__(self, file: str, field: str, reason: str) -> None:
        where = f"{file}: {field}" if field else file
        super().__init__(f"{where}: {reason}", field=field or None, file=file, reason=reason)
        self.file = file
        self.reason = reason


_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
# UK GDPR Art. 6(1)(a)-(f) and Art. 9(2)(a)-(j).
_ART6 = re.compile(r"^6\(1\)\([a-f]\)$")
_ART9 = re.compile(r"^9\(2\)\([a-j]\)$")
_TOP = {"purpose", "applies_to", "retention", "lawful_basis", "erasure_request", "access", "data", "review"}
_PERIOD_KEYS = {"after", "years", "months", "days", "when_age_at_last_session"}


@dataclass
class _Reader:
    """Typed access to one file's tables that raises ``PolicyFileError`` naming the dotted field."""

    file: str

    def fail(self, field: str, reason: str) -> PolicyFileError:
        return PolicyFileError(self.file, field, reason)

    def table(
        self, data: Mapping[str, Any], name: str, allowed: set[str], *, prefix: str = ""
    ) -> dict[str, Any]:
        where = prefix + name
        value = data.get(name)
        if value is None:
            raise self.fail(where, "missing table")
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table like [" + where + "]")
        self.no_unknown(value, allowed, where)
        return value

    def no_unknown(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(
                    f"{where}.{key}" if where else key, f"unknown key (allowed: {', '.join(sorted(allowed))})"
                )

    def text(self, table: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(f"{where}.{key}", "missing field")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", "must be non-empty text")
        return value.strip()

    def need_text(self, table: Mapping[str, Any], key: str, where: str) -> str:
        value = self.text(table, key, where)
        if value is None:  # pragma: no cover  # required=True raised already
            raise self.fail(f"{where}.{key}", "missing field")
        return value

    def whole(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        *,
        default: int | None = None,
        low: int = 0,
        high: int = 10_000,
    ) -> int:
        value = table.get(key, default)
        if value is None:
            raise self.fail(f"{where}.{key}", "missing field")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{where}.{key}", f"{value!r} is not a whole number")
        if not low <= value <= high:
            raise self.fail(f"{where}.{key}", f"{value} is out of range ({low} to {high})")
        return value

    def texts(self, table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = table.get(key)
        if value is None:
            raise self.fail(f"{where}.{key}", "missing field")
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise self.fail(f"{where}.{key}", "must be a non-empty list of text")
        return tuple(v.strip() for v in value)

    def choices(
        self, table: Mapping[str, Any], key: str, where: str, convert: Callable[[Any], E], every: frozenset[E]
    ) -> frozenset[E]:
        """A list of allowed values; omitted means every value (documented in docs/retention.md)."""
        if key not in table:
            return every
        value = table[key]
        if not isinstance(value, list) or not value:
            raise self.fail(f"{where}.{key}", "must be a non-empty list")
        out = set()
        for item in value:
            try:
                out.add(convert(item))
            except (ValueError, TypeError):
                allowed = ", ".join(repr(v) for v in sorted(every, key=str))
                raise self.fail(f"{where}.{key}", f"{item!r} is not one of {allowed}") from None
        return frozenset(out)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


def _period(r: _Reader, raw: Any, where: str) -> Period:
    if not isinstance(raw, dict):
        raise r.fail(where, 'must be a table like {after = "session", days = 28}')
    r.no_unknown(raw, _PERIOD_KEYS, where)
    after_raw = r.need_text(raw, "after", where)
    try:
        after = Anchor(after_raw)
    except ValueError:
        raise r.fail(
            f"{where}.after", f"{after_raw!r} is not one of 'session', 'last_session', 'birth'"
        ) from None
    years = r.whole(raw, "years", where, default=0, high=150)
    months = r.whole(raw, "months", where, default=0, high=1800)
    days = r.whole(raw, "days", where, default=0, high=36_500)
    if years == months == days == 0:
        raise r.fail(where, "a period needs at least one of years, months or days greater than 0")
    age = raw.get("when_age_at_last_session")
    if age is not None:
        age = r.whole(raw, "when_age_at_last_session", where, high=130)
    return Period(after, years, months, days, age)


def _retention(r: _Reader, data: Mapping[str, Any]) -> RetentionRule:
    table = r.table(data, "retention", {"keep_until_latest_of", "at_end"})
    entries = table.get("keep_until_latest_of")
    if entries is None:
        raise r.fail(
            "retention.keep_until_latest_of",
            "missing field: add at least one [[retention.keep_until_latest_of]] entry",
        )
    if not isinstance(entries, list) or not entries:
        raise r.fail(
            "retention.keep_until_latest_of", "must be a list of [[retention.keep_until_latest_of]] tables"
        )
    periods = tuple(_period(r, e, f"retention.keep_until_latest_of[{i}]") for i, e in enumerate(entries))
    if all(p.when_age_at_last_session is not None for p in periods):
        raise r.fail(
            "retention.keep_until_latest_of",
            "every entry is conditional on an age, so some recordings "
            "would have no erase date: add one entry without when_age_at_last_session",
        )
    at_end_raw = table.get("at_end", "erase")
    try:
        at_end = AtEnd(at_end_raw)
    except ValueError:
        raise r.fail("retention.at_end", f"{at_end_raw!r} is not 'erase' or 'review'") from None
    return RetentionRule(periods, at_end)


def _lawful_basis(r: _Reader, data: Mapping[str, Any], kinds: frozenset[RecordingKind]) -> LawfulBasis:
    where = "lawful_basis"
    t = r.table(
        data, where, {"article_6", "article_6_reason", "article_9", "article_9_reason", "dpa_2018_condition"}
    )
    art6 = r.need_text(t, "article_6", where)
    if not _ART6.match(art6):
        raise r.fail(f"{where}.article_6", f"{art6!r} is not a UK GDPR Art. 6 basis such as '6(1)(e)'")
    art9 = r.text(t, "article_9", where, required=False)
    if art9 is not None and not _ART9.match(art9):
        raise r.fail(f"{where}.article_9", f"{art9!r} is not a UK GDPR Art. 9 condition such as '9(2)(h)'")
    if RecordingKind.THERAPY in kinds and art9 is None:
        # Therapy recordings are data concerning health (Art. 4(15)): Art. 9 needs a condition.
        raise r.fail(
            f"{where}.article_9",
            "missing field: therapy recordings are health data and need an Art. 9(2) condition",
        )
    reason9 = r.text(t, "article_9_reason", where, required=art9 is not None)
    return LawfulBasis(
        art6,
        r.need_text(t, "article_6_reason", where),
        art9,
        reason9,
        r.text(t, "dpa_2018_condition", where, required=False),
    )


def _erasure_request(r: _Reader, data: Mapping[str, Any]) -> ErasureRequest:
    t = r.table(data, "erasure_request", {"action", "reason"})
    action = r.need_text(t, "action", "erasure_request")
    if action not in ("erase", "keep"):
        raise r.fail("erasure_request.action", f"{action!r} is not 'erase' or 'keep'")
    reason = r.need_text(t, "reason", "erasure_request")
    if action == "keep" and "17(3)" not in reason:
        raise r.fail("erasure_request.reason", "name the UK GDPR Art. 17(3) exemption that allows keeping, "
                     "such as 'Art. 17(3)(b)'")
    return ErasureRequest(erase=action == "erase", reason=reason)


def _review_date(r: _Reader, t: Mapping[str, Any]) -> date:
    value = t.get("next_review")
    if value is None:
        raise r.fail("review.next_review", "missing field")
    # tomllib gives a datetime.date for a bare TOML date; a datetime or a string is a mistake.
    if isinstance(value, date) and type(value) is date:
        return value
    raise r.fail("review.next_review", f"{value!r} is not a date: write a bare TOML date like 2027-04-01")


def parse_policy(file: str, text: str) -> Policy:
    """Parse one policy file's text. ``file`` is used only to name it in errors."""
    r = _Reader(file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message carries "(at line N, column M)".
        raise r.fail("", f"not valid TOML: {exc}") from None
    r.no_unknown(data, _TOP, "")

    purpose = r.table(data, "purpose", {"id", "name", "description"})
    pid = r.need_text(purpose, "id", "purpose")
    if not _ID.match(pid):
        raise r.fail("purpose.id", f"{pid!r} must be lower-case letters, digits and hyphens")

    w = "applies_to"
    a = r.table(data, w, {"kinds", "ages", "provisions", "flagged_for_safeguarding", "priority"})
    match = Match(
        kinds=r.choices(a, "kinds", w, RecordingKind, frozenset(RecordingKind)),
        ages=r.choices(a, "ages", w, AgeBand, frozenset(AgeBand)),
        provisions=r.choices(a, "provisions", w, ProvisionType, frozenset(ProvisionType)),
        flagged_for_safeguarding=r.choices(a, "flagged_for_safeguarding", w, _bool, frozenset({True, False})),
    )
    priority = r.whole(a, "priority", w, high=1000)

    access = r.table(data, "access", {"roles"})
    roles = r.texts(access, "roles", "access")
    known_roles = {role.value for role in Role}
    for role in roles:
        if role not in known_roles:
            raise r.fail("access.roles", f"{role!r} is not a staff role ({', '.join(sorted(known_roles))})")

    d = r.table(data, "data", {"subjects", "categories"})
    review = r.table(data, "review", {"next_review", "sources"})
    return Policy(
        id=pid,
        name=r.need_text(purpose, "name", "purpose"),
        description=r.need_text(purpose, "description", "purpose"),
        source_file=file,
        priority=priority,
        applies_to=match,
        retention=_retention(r, data),
        lawful_basis=_lawful_basis(r, data, match.kinds),
        erasure_request=_erasure_request(r, data),
        access_roles=roles,
        data_subjects=r.texts(d, "subjects", "data"),
        data_categories=r.texts(d, "categories", "data"),
        next_review=_review_date(r, review),
        sources=r.texts(review, "sources", "review"),
    )


def check_policy_set(policies: list[Policy]) -> PolicySet:
    """Refuse duplicate ids, ties between purposes, and any recording no purpose covers."""
    seen: dict[str, Policy] = {}
    for p in policies:
        if p.id in seen:
            raise PolicyFileError(
                p.source_file, "purpose.id", f"{p.id!r} is already the id of {seen[p.id].source_file}"
            )
        seen[p.id] = p
    winners: set[str] = set()
    for kind, age, provision, flagged in all_combinations():
        found = [p for p in policies if p.applies_to.matches(kind, age, provision, flagged)]
        case = (
            f"{kind.value} recording, client {age.value}, provision {provision.value}, "
            f"{'flagged' if flagged else 'not flagged'} for safeguarding"
        )
        if not found:
            names = ", ".join(sorted(p.source_file for p in policies)) or "no files"
            raise PolicyFileError(
                names,
                "applies_to",
                f"no policy covers a {case}: add a policy file for it or widen an applies_to",
            )
        found.sort(key=lambda p: (-p.priority, p.source_file))
        for first, second in _pairs(found):
            if first.priority == second.priority:
                raise PolicyFileError(
                    second.source_file,
                    "applies_to.priority",
                    f"overlaps {first.source_file} with the same priority {first.priority} "
                    f"(both match a {case}): give one a higher priority or narrow applies_to",
                )
        winners.add(found[0].id)
    for p in policies:
        if p.id not in winners:
            raise PolicyFileError(
                p.source_file,
                "applies_to",
                "is never chosen: every recording it matches goes to a higher-priority policy; "
                "raise its priority or remove the file",
            )
    return PolicySet(tuple(sorted(policies, key=lambda p: p.id)))


def _pairs(items: list[Policy]) -> list[tuple[Policy, Policy]]:
    """All unordered pairs, so any two equal-priority purposes that overlap are refused."""
    return [(items[i], items[j]) for i in range(len(items)) for j in range(i + 1, len(items))]


def load_policies(folder: Path) -> PolicySet:
    """Load every ``*.toml`` file in ``folder``.

    Raises:
        PolicyFileError: the first problem found, naming the file, the field and the reason.
    """
    if not folder.is_dir():
        raise PolicyFileError(
            str(folder), "", "is not a folder of retention policy files (DUET_STORAGE_POLICIES)"
        )
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise PolicyFileError(str(folder), "", "contains no *.toml retention policy files")
    policies = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise PolicyFileError(path.name, "", "is not UTF-8 text") from None
        policies.append(parse_policy(path.name, text))
    return check_policy_set(policies)
