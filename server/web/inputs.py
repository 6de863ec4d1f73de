"""Everything a request brings in, read once and refused in words a person understands (never a 500).

* ids in the path (``{booking_id}`` and every other ``{..._id}``) and in the query string (``?client_id=``)
  are checked by the access middleware before any handler runs: ASCII digits only (``str.isdigit`` also
  accepts "²" and "٣", which ``int`` refuses or reads differently) and within a signed 64-bit database id;
* JSON bodies go through ``parse_json``: no number the database cannot hold or that takes seconds to read
  (Python refuses integers over 4,300 digits with a ValueError), no NaN or Infinity, no nesting deeper than
  ``MAX_DEPTH``; then, after the model's checks, ``check_text``: no text that is not valid Unicode or holds
  NUL (PostgreSQL can store neither), and no date before 1900 or after 2999 (``check_dates``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date
from typing import Any

from server.errors import InvalidInput, NotFound

MAX_ID = 2**63 - 1  # BIGINT
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40
_ASCII_DIGITS = frozenset("0123456789")
# Path parameters that are not numeric ids (UUIDs, tokens): their handlers check them.
NOT_NUMERIC = frozenset({"recording_id", "token", "probe"})


def _words(name: str) -> str:
    return name.removesuffix("_id").replace("_", " ")


def parse_id(raw: str) -> int | None:
    """``raw`` as a database id, or None when it is not one (not ASCII digits, zero, or over 64 bits)."""
    if not raw or len(raw) > 19 or not set(raw) <= _ASCII_DIGITS:
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def path_id(match_info: Mapping[str, str], name: str) -> int:
    """The id ``name`` from the path; a malformed one is 404, like an id that does not exist."""
    raw = match_info[name]
    value = parse_id(raw)
    if value is None:
        raise NotFound(f"There is no {_words(name)} at this address: {raw[:40]!r} is not an id (ids are whole "
                       "numbers written with the digits 0 to 9).")
    return value


def check_ids(match_info: Mapping[str, str], query: Mapping[str, str]) -> None:
    """Refuse a request whose path or query string holds a malformed numeric id, before any handler reads it
    (a handler's own ``int()`` then never meets "²", nor an id the database cannot hold)."""
    for name in match_info:
        if name.endswith("_id") and name not in NOT_NUMERIC:
            path_id(match_info, name)
    for name, raw in query.items():
        if name.endswith("_id") and name not in NOT_NUMERIC and parse_id(raw) is None:
            raise InvalidInput(f"{name} must be an id: a whole number from 1, written with the digits 0 to 9.",
                               field=name)


class _Refused(ValueError):
    pass


def _int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_NUMBER_CHARS or not -MAX_ID - 1 <= int(text) <= MAX_ID:
        raise _Refused(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large (numbers must fit in "
                       "64 bits)")
    return int(text)


def _float(text: str) -> float:
    value = float(text) if len(text) <= 400 else math.inf
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large")
    return value


def _constant(text: str) -> Any:
    raise _Refused(f"{text} is not a number JSON allows")


def _check_depth(data: Any) -> None:
    """Walk the parsed body without recursion (pydantic and our code recurse): refuse deep nesting."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidInput(f"The request body is nested more than {MAX_DEPTH} levels deep.")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


def check_text(data: Any) -> None:
    """Refuse text PostgreSQL cannot store (NUL, lone surrogates), naming the field; run after the model's
    own checks, which give the better message where a field refuses control characters already."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                _text(key, where or "body")
                stack.append((item, f"{where}.{key}" if where else str(key)))
        elif isinstance(value, list):
            stack.extend((item, f"{where}.{i}" if where else str(i)) for i, item in enumerate(value))
        elif isinstance(value, str):
            _text(value, where or "body")


def _text(value: str, where: str) -> None:
    if "\x00" in value:
        raise InvalidInput(f"{where[:60]}: must not contain a NUL character (\\u0000).", field=where[:60])
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{where[:60]}: is not valid Unicode text (it holds a lone surrogate such as "
                           "\\ud800).", field=where[:60]) from None


FIRST_YEAR, LAST_YEAR = 1900, 2999


def check_date(value: date, where: str) -> None:
    """Refuse dates no one means (0001-01-01, 9999-12-31): date arithmetic on them overflows into a 500."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise InvalidInput(f"{where}: {value.isoformat()} is not a date Duet accepts (years {FIRST_YEAR} to "
                           f"{LAST_YEAR}).", field=where)


def check_dates(data: Any) -> None:
    """Walk a validated body (``model_dump()``) and refuse any date or date-time out of range, naming it."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            stack.extend((item, f"{where}.{key}" if where else str(key)) for key, item in value.items())
        elif isinstance(value, list | tuple | set | frozenset):
            stack.extend((item, f"{where}.{i}" if where else str(i)) for i, item in enumerate(value))
        elif isinstance(value, date):
            check_date(value, where or "body")


def parse_json(raw: bytes) -> Any:
    """Parse a request body; every problem is InvalidInput saying what is wrong and where."""
    try:
        data = json.loads(raw or b"null", parse_int=_int, parse_float=_float, parse_constant=_constant)
    except _Refused as exc:
        raise InvalidInput(f"The request body is not accepted: {exc}.") from None
    except RecursionError:
        raise InvalidInput(f"The request body is nested more than {MAX_DEPTH} levels deep.") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"The request body is not valid JSON at character {exc.pos}.") from None
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("The request body is not valid JSON text (send UTF-8).") from None
    _check_depth(data)
    return data
