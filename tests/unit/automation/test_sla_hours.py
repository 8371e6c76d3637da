"""Business-hours arithmetic: weekends, holidays, DST (Athens, Budapest), Dubai's weekend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from automation.sla.hours import (
    Calendar,
    CalendarError,
    add_business_minutes,
    business_minutes_between,
)

NINE_TO_FIVE = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def cal(zone: str, hours=None, holidays=()) -> Calendar:
    return Calendar.from_json(zone, hours or NINE_TO_FIVE, holidays)


def test_within_the_same_day():
    c = cal("Europe/Athens")
    start = local("Europe/Athens", 2025, 3, 4, 10, 0)  # Tuesday
    assert add_business_minutes(start, 120, c) == local("Europe/Athens", 2025, 3, 4, 12, 0)


def test_before_opening_starts_at_opening():
    c = cal("Europe/Athens")
    start = local("Europe/Athens", 2025, 3, 4, 6, 30)
    assert add_business_minutes(start, 30, c) == local("Europe/Athens", 2025, 3, 4, 9, 30)


def test_friday_evening_rolls_over_the_weekend():
    c = cal("Europe/Budapest")
    start = local("Europe/Budapest", 2025, 3, 7, 16, 0)  # Friday
    assert add_business_minutes(start, 120, c) == local("Europe/Budapest", 2025, 3, 10, 10, 0)


def test_holidays_are_skipped():
    c = cal("Europe/Athens", holidays=["2025-03-25"])  # Greek Independence Day, a Tuesday
    start = local("Europe/Athens", 2025, 3, 24, 16, 0)
    assert add_business_minutes(start, 120, c) == local("Europe/Athens", 2025, 3, 26, 10, 0)


def test_spring_forward_in_athens_keeps_wall_clock_hours():
    # DST begins Sunday 30 March 2025 03:00 in Athens (UTC+2 -> UTC+3).
    c = cal("Europe/Athens")
    start = local("Europe/Athens", 2025, 3, 28, 16, 0)  # Friday 16:00 EET = 14:00 UTC
    due = add_business_minutes(start, 120, c)
    assert due == local("Europe/Athens", 2025, 3, 31, 10, 0)  # Monday 10:00 EEST
    assert due == datetime(2025, 3, 31, 7, 0, tzinfo=UTC)


def test_fall_back_in_budapest_keeps_wall_clock_hours():
    # DST ends Sunday 26 October 2025 03:00 in Budapest (UTC+2 -> UTC+1).
    c = cal("Europe/Budapest")
    start = local("Europe/Budapest", 2025, 10, 24, 16, 30)
    due = add_business_minutes(start, 60, c)
    assert due == datetime(2025, 10, 27, 8, 30, tzinfo=UTC)  # Monday 09:30 CET


def test_a_24_hour_calendar_spans_the_short_dst_day():
    c = Calendar.from_json(
        "Europe/Athens", {d: [["00:00", "24:00"]] for d in ("sat", "sun", "mon")}
    )
    start = local("Europe/Athens", 2025, 3, 30, 0, 0)
    end = local("Europe/Athens", 2025, 3, 31, 0, 0)
    assert business_minutes_between(start, end, c) == 23 * 60  # the day has 23 hours


def test_dubai_weekend_is_saturday_and_sunday_since_2022_and_has_no_dst():
    hours = {
        d: [["08:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
    }
    c = Calendar.from_json("Asia/Dubai", hours)
    start = local("Asia/Dubai", 2025, 7, 4, 11, 0)  # Friday, before lunch
    # 1 h until lunch, 4 h in the afternoon, weekend, then 1 h on Monday.
    assert add_business_minutes(start, 6 * 60, c) == local("Asia/Dubai", 2025, 7, 7, 9, 0)


def test_split_days_skip_the_lunch_break():
    hours = {"mon": [["08:00", "12:00"], ["13:00", "17:00"]]}
    c = Calendar.from_json("Asia/Dubai", hours)
    start = local("Asia/Dubai", 2025, 7, 7, 11, 30)
    assert add_business_minutes(start, 60, c) == local("Asia/Dubai", 2025, 7, 7, 13, 30)


def test_minutes_between_counts_only_open_time():
    c = cal("Europe/Athens")
    start = local("Europe/Athens", 2025, 3, 7, 16, 0)  # Friday 16:00
    end = local("Europe/Athens", 2025, 3, 10, 10, 0)  # Monday 10:00
    assert business_minutes_between(start, end, c) == 120
    assert business_minutes_between(end, start, c) == 0


def test_adding_then_measuring_round_trips():
    c = cal("Europe/Budapest", holidays=["2025-10-23"])
    start = local("Europe/Budapest", 2025, 10, 20, 13, 17)
    for minutes in (1, 59, 480, 481, 2000, 5000):
        due = add_business_minutes(start, minutes, c)
        assert business_minutes_between(start, due, c) == pytest.approx(minutes)


def test_always_open_is_plain_time():
    start = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)
    assert add_business_minutes(start, 90, Calendar.always_open()) == start + timedelta(minutes=90)


def test_is_open():
    c = cal("Europe/Athens")
    assert c.is_open(local("Europe/Athens", 2025, 3, 4, 9, 0))
    assert not c.is_open(local("Europe/Athens", 2025, 3, 4, 17, 0))
    assert not c.is_open(local("Europe/Athens", 2025, 3, 8, 12, 0))  # Saturday


@pytest.mark.parametrize(
    ("zone", "hours", "holidays", "field"),
    [
        ("Mars/Olympus", NINE_TO_FIVE, (), "timezone"),
        ("UTC", {"funday": [["09:00", "17:00"]]}, (), "hours.funday"),
        ("UTC", {"mon": [["17:00", "09:00"]]}, (), "hours.mon[0]"),
        ("UTC", {"mon": [["9am", "17:00"]]}, (), "hours.mon[0]"),
        ("UTC", {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}, (), "hours.mon"),
        ("UTC", NINE_TO_FIVE, ("25/12/2025",), "holidays[0]"),
    ],
)
def test_bad_calendars_name_the_field(zone, hours, holidays, field):
    with pytest.raises(CalendarError) as info:
        Calendar.from_json(zone, hours, holidays)
    assert info.value.field == field


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="naive"):
        add_business_minutes(datetime(2025, 1, 1, 9), 10, Calendar.always_open())


def test_a_calendar_without_hours_cannot_schedule():
    with pytest.raises(ValueError, match="no open hours"):
        add_business_minutes(datetime(2025, 1, 1, tzinfo=UTC), 10, Calendar.from_json("UTC", {}))
