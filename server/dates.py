"""Calendar arithmetic shared by every rule that counts years: training, DBS checks, retention, ages.

One definition of age for every rule (consent, retention, booking): ``age_on``.

A day that does not exist in the target month rolls forward to the next 1st (29 February + 1 year is
1 March), so a period never ends early (Family Law Reform Act 1969 s. 9 for birthdays).
"""

from __future__ import annotations

from datetime import date, timedelta


def add_period(start: date, years: int = 0, months: int = 0, days: int = 0) -> date:
    """``start`` plus a calendar period; a day missing from the target month rolls to the next 1st."""
    total = start.month - 1 + months
    year = start.year + years + total // 12
    month = total % 12 + 1
    try:
        moved = date(year, month, start.day)
    except ValueError:  # 29 Feb in a common year, 31 in a 30-day month: roll forward, never back
        moved = date(year + (month == 12), month % 12 + 1, 1)
    return moved + timedelta(days=days)


def add_years(day: date, years: int) -> date:
    return add_period(day, years=years)


def age_on(date_of_birth: date, day: date) -> int:
    """Completed years on ``day``; someone born on 29 February turns a year older on 1 March."""
    years = day.year - date_of_birth.year
    if (day.month, day.day) < (date_of_birth.month, date_of_birth.day):
        years -= 1
    return years
