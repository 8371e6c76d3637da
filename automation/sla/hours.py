"""Business-hours arithmetic: pure, timezone-aware, unit-tested.

A calendar is weekly opening hours per weekday (local wall time), a timezone
and a set of holiday dates. Times go in and come out as aware UTC datetimes;
the work happens in local time so that a 09:00-17:00 day stays 09:00-17:00
across daylight-saving changes (the day itself is then 8 hours long in both
zones, while the UTC offsets differ).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Search this far ahead for open hours before deciding a calendar is always closed.
MAX_SCAN_DAYS = 800


class CalendarError(ValueError):
    """A calendar that cannot be used; ``field`` names the bad part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _parse_time(value: str, where: str) -> time:
    if value == "24:00":
        return time.max
    try:
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise CalendarError(where, f"'{value}' is not a time like 09:00") from None


@dataclass(frozen=True)
class Calendar:
    """Weekly hours (weekday 0 = Monday -> list of (open, close)), timezone, holidays."""

    timezone: str = "UTC"
    hours: Mapping[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def always_open(cls) -> Calendar:
        day = ((time(0, 0), time.max),)
        return cls("UTC", {d: day for d in range(7)})

    @classmethod
    def from_json(
        cls,
        timezone: str,
        weekly: Mapping[str, Iterable[Iterable[str]]],
        holidays: Iterable[str | date] = (),
    ) -> Calendar:
        """Build from ``{"mon": [["09:00", "17:00"]], ...}`` and ISO holiday dates."""
        try:
            ZoneInfo(timezone)
        except Exception:
            raise CalendarError("timezone", f"unknown timezone '{timezone}'") from None
        hours: dict[int, tuple[tuple[time, time], ...]] = {}
        for key, spans in weekly.items():
            if key not in WEEKDAYS:
                raise CalendarError(f"hours.{key}", f"unknown weekday '{key}'")
            parsed = []
            for i, span in enumerate(spans):
                parts = list(span)
                if len(parts) != 2:
                    raise CalendarError(f"hours.{key}[{i}]", "give [open, close]")
                start = _parse_time(parts[0], f"hours.{key}[{i}]")
                end = _parse_time(parts[1], f"hours.{key}[{i}]")
                if end <= start:
                    raise CalendarError(f"hours.{key}[{i}]", "closes before it opens")
                parsed.append((start, end))
            parsed.sort()
            for (_, end), (start, _) in pairwise(parsed):
                if start < end:
                    raise CalendarError(f"hours.{key}", "opening hours overlap")
            hours[WEEKDAYS.index(key)] = tuple(parsed)
        days = set()
        for i, value in enumerate(holidays):
            try:
                days.add(value if isinstance(value, date) else date.fromisoformat(value))
            except ValueError:
                raise CalendarError(f"holidays[{i}]", f"'{value}' is not a date") from None
        return cls(timezone, hours, frozenset(days))

    def to_json(self) -> dict[str, object]:
        def fmt(t: time) -> str:
            return "24:00" if t == time.max else t.strftime("%H:%M")

        return {
            "timezone": self.timezone,
            "hours": {
                WEEKDAYS[d]: [[fmt(a), fmt(b)] for a, b in spans]
                for d, spans in sorted(self.hours.items())
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }

    # ---------------------------------------------------------- intervals

    def _local(self, day: date, moment: time) -> datetime:
        zone = self.zone
        if moment == time.max:
            return datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
        local = datetime.combine(day, moment, zone)
        # A wall time skipped by a spring-forward gap does not exist; roll forward to real time.
        return local.astimezone(UTC)

    def open_intervals(
        self, start: datetime, *, days: int = MAX_SCAN_DAYS
    ) -> Iterator[tuple[datetime, datetime]]:
        """Yield open (from, to) UTC intervals that end after ``start``, in order."""
        zone = self.zone
        day = start.astimezone(zone).date() - timedelta(days=1)
        for _ in range(days):
            if day not in self.holidays:
                for open_at, close_at in self.hours.get(day.weekday(), ()):
                    a, b = self._local(day, open_at), self._local(day, close_at)
                    if b > start and b > a:
                        yield max(a, start), b
            day += timedelta(days=1)

    def is_open(self, moment: datetime) -> bool:
        for a, b in self.open_intervals(moment, days=3):
            return a <= moment < b
        return False


def _check(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; use timezone-aware UTC")
    return moment.astimezone(UTC)


def add_business_minutes(start: datetime, minutes: float, calendar: Calendar) -> datetime:
    """Return the moment ``minutes`` of open time after ``start``."""
    start = _check(start)
    remaining = timedelta(minutes=minutes)
    if remaining <= timedelta(0):
        return start
    for a, b in calendar.open_intervals(start):
        span = b - a
        if remaining <= span:
            return a + remaining
        remaining -= span
    raise ValueError("the calendar has no open hours")


def business_minutes_between(start: datetime, end: datetime, calendar: Calendar) -> float:
    """Open minutes between two moments (0 when ``end`` is not after ``start``)."""
    start, end = _check(start), _check(end)
    if end <= start:
        return 0.0
    total = timedelta(0)
    for a, b in calendar.open_intervals(start):
        if a >= end:
            break
        total += min(b, end) - a
    return total.total_seconds() / 60
