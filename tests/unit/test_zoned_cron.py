"""Unit tests for task_scheduler.zoned_cron: cron expressions read in a zone's wall-clock time.

Contract section 1 (`timezone`): daylight saving as EventBridge Scheduler applies it. A local time
that does not exist that day (clocks going forward) is skipped; one that happens twice (clocks
going back) runs once, at the first of its two instants. Occurrences come out as UTC instants.
"""

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from task_scheduler.zoned_cron import UnknownZone, ZonedCron, zone_named, zone_names
from tests.support.cron import occurrences_after


def utc(year, month, day, hour=0, minute=0):
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def occurrences(expression, zone, after, limit):
    return occurrences_after(ZonedCron.parse(expression, zone), after, limit)


def local_walls(instants, zone):
    """The wall-clock times `zone` shows at `instants`, as text."""
    return [i.astimezone(zone_named(zone)).strftime("%Y-%m-%d %H:%M %Z") for i in instants]


# --- spring forward: a local time that does not exist is skipped ------------------------------


def test_new_york_spring_forward_day_skips_the_missing_half_past_two():
    # 2027-03-14: 02:00 EST becomes 03:00 EDT; 02:30 does not exist that day.
    assert occurrences("cron(30 2 * * ? *)", "America/New_York", utc(2027, 3, 12, 12), 3) == [
        utc(2027, 3, 13, 7, 30),  # 02:30 EST (-05:00)
        utc(2027, 3, 15, 6, 30),  # 02:30 EDT (-04:00)
        utc(2027, 3, 16, 6, 30),
    ]


def test_london_spring_forward_day_skips_the_missing_half_past_one():
    # 2027-03-28: 01:00 GMT becomes 02:00 BST; 01:30 does not exist that day.
    assert occurrences("cron(30 1 * * ? *)", "Europe/London", utc(2027, 3, 26, 12), 3) == [
        utc(2027, 3, 27, 1, 30),  # 01:30 GMT
        utc(2027, 3, 29, 0, 30),  # 01:30 BST (+01:00)
        utc(2027, 3, 30, 0, 30),
    ]


def test_every_15_minutes_across_the_new_york_spring_forward_hour():
    found = occurrences("cron(0/15 * * * ? *)", "America/New_York", utc(2027, 3, 14, 6, 40), 3)
    assert found == [utc(2027, 3, 14, 6, 45), utc(2027, 3, 14, 7, 0), utc(2027, 3, 14, 7, 15)]
    assert local_walls(found, "America/New_York") == [
        "2027-03-14 01:45 EST",
        "2027-03-14 03:00 EDT",
        "2027-03-14 03:15 EDT",
    ]


def test_times_on_the_spring_forward_day_outside_the_missing_hour_keep_their_wall_time():
    assert occurrences("cron(0 12 * * ? *)", "America/New_York", utc(2027, 3, 13, 18), 2) == [
        utc(2027, 3, 14, 16, 0),  # noon EDT
        utc(2027, 3, 15, 16, 0),
    ]


# --- fall back: a local time that happens twice runs once, at its first instant -----------------


def test_new_york_fall_back_day_runs_half_past_one_once_at_its_first_instant():
    # 2027-11-07: 02:00 EDT becomes 01:00 EST; 01:30 happens at 05:30Z (EDT) and 06:30Z (EST).
    assert occurrences("cron(30 1 * * ? *)", "America/New_York", utc(2027, 11, 5, 12), 3) == [
        utc(2027, 11, 6, 5, 30),  # 01:30 EDT
        utc(2027, 11, 7, 5, 30),  # 01:30 EDT, the first of the two; not 06:30Z as well
        utc(2027, 11, 8, 6, 30),  # 01:30 EST
    ]


def test_london_fall_back_day_runs_half_past_one_once_at_its_first_instant():
    # 2027-10-31: 02:00 BST becomes 01:00 GMT; 01:30 happens at 00:30Z (BST) and 01:30Z (GMT).
    assert occurrences("cron(30 1 * * ? *)", "Europe/London", utc(2027, 10, 29, 12), 3) == [
        utc(2027, 10, 30, 0, 30),  # 01:30 BST
        utc(2027, 10, 31, 0, 30),  # 01:30 BST, the first of the two
        utc(2027, 11, 1, 1, 30),  # 01:30 GMT
    ]


@pytest.mark.parametrize(
    ("zone", "start", "expected_walls"),
    [
        (
            "America/New_York",
            utc(2027, 11, 7, 4, 40),
            ["00:45 EDT", "01:00 EDT", "01:15 EDT", "01:30 EDT", "01:45 EDT", "02:00 EST"],
        ),
        (
            "Europe/London",
            utc(2027, 10, 30, 23, 40),
            ["00:45 BST", "01:00 BST", "01:15 BST", "01:30 BST", "01:45 BST", "02:00 GMT"],
        ),
    ],
)
def test_every_15_minutes_across_the_fall_back_hour_runs_each_wall_time_once(
    zone, start, expected_walls
):
    found = occurrences("cron(0/15 * * * ? *)", zone, start, 6)
    assert [wall[-9:] for wall in local_walls(found, zone)] == expected_walls
    # One hour of repeated wall times is passed over: 01:45 is followed by 02:00 an hour later.
    assert found[-1] - found[-2] == timedelta(minutes=75)


def test_from_inside_the_second_pass_of_the_repeated_hour_the_next_is_after_it():
    # 06:20Z is 01:20 EST, the second pass: 01:30's first instant (05:30Z) has gone, and it does
    # not run a second time at 06:30Z; the next 01:30 is the following day's.
    cron = ZonedCron.parse("cron(30 1 * * ? *)", "America/New_York")
    assert cron.next_after(utc(2027, 11, 7, 6, 20)) == utc(2027, 11, 8, 6, 30)
    every_minute = ZonedCron.parse("cron(* * * * ? *)", "America/New_York")
    assert every_minute.next_after(utc(2027, 11, 7, 6, 20)) == utc(2027, 11, 7, 7, 0)


# --- zones half an hour off UTC ---------------------------------------------------------------


def test_kolkata_is_five_and_a_half_hours_ahead_all_year():
    assert occurrences("cron(0 9 * * ? *)", "Asia/Kolkata", utc(2027, 3, 13), 2) == [
        utc(2027, 3, 13, 3, 30),
        utc(2027, 3, 14, 3, 30),
    ]
    # Local midnight on the first of the month is the evening before in UTC.
    assert occurrences("cron(0 0 1 * ? *)", "Asia/Kolkata", utc(2026, 12, 15), 2) == [
        utc(2026, 12, 31, 18, 30),
        utc(2027, 1, 31, 18, 30),
    ]


def test_adelaide_fall_back_day_runs_the_repeated_half_past_two_once():
    # 2027-04-04: 03:00 ACDT (+10:30) becomes 02:00 ACST (+09:30); 02:30 happens twice.
    assert occurrences("cron(30 2 * * ? *)", "Australia/Adelaide", utc(2027, 4, 2), 3) == [
        utc(2027, 4, 2, 16, 0),  # 04-03 02:30 ACDT
        utc(2027, 4, 3, 16, 0),  # 04-04 02:30 ACDT, the first of the two (not 17:00Z)
        utc(2027, 4, 4, 17, 0),  # 04-05 02:30 ACST
    ]


def test_adelaide_spring_forward_day_skips_the_missing_half_past_two():
    # 2027-10-03: 02:00 ACST (+09:30) becomes 03:00 ACDT (+10:30); 02:30 does not exist.
    assert occurrences("cron(30 2 * * ? *)", "Australia/Adelaide", utc(2027, 10, 1), 3) == [
        utc(2027, 10, 1, 17, 0),  # 10-02 02:30 ACST
        utc(2027, 10, 3, 16, 0),  # 10-04 02:30 ACDT
        utc(2027, 10, 4, 16, 0),
    ]


# --- the rest of the cron's meaning -----------------------------------------------------------


def test_utc_reads_the_cron_as_it_is():
    expression = "cron(0/15 * * * ? *)"
    assert occurrences(expression, "UTC", utc(2027, 3, 14, 6, 40), 3) == [
        utc(2027, 3, 14, 6, 45),
        utc(2027, 3, 14, 7, 0),
        utc(2027, 3, 14, 7, 15),
    ]


def test_single_moment_at_a_skipped_local_time_never_occurs():
    cron = ZonedCron.parse("cron(30 2 14 3 ? 2027)", "America/New_York")
    assert cron.is_single_moment()
    assert cron.next_after(utc(2027, 1, 1)) is None


def test_single_moment_at_a_repeated_local_time_occurs_once():
    cron = ZonedCron.parse("cron(30 1 7 11 ? 2027)", "America/New_York")
    assert occurrences_after(cron, utc(2027, 1, 1), 5) == [utc(2027, 11, 7, 5, 30)]


def test_next_after_is_strictly_after_and_accepts_any_aware_time():
    cron = ZonedCron.parse("cron(0 9 * * ? *)", "Europe/Paris")
    assert cron.next_after(utc(2027, 6, 1, 7, 0)) == utc(2027, 6, 2, 7, 0)  # 09:00 CEST
    paris_morning = datetime(2027, 6, 1, 8, 59, 59, tzinfo=timezone(timedelta(hours=2)))
    assert cron.next_after(paris_morning) == utc(2027, 6, 1, 7, 0)
    assert cron.next_after(paris_morning).tzinfo is UTC


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="naive"):
        ZonedCron.parse("cron(0 9 * * ? *)", "Europe/Paris").next_after(datetime(2027, 6, 1))


def test_last_years_of_the_grammar_and_beyond():
    cron = ZonedCron.parse("cron(59 23 31 12 ? 2199)", "America/New_York")
    assert cron.next_after(utc(2199, 1, 1)) == utc(2200, 1, 1, 4, 59)
    assert cron.next_after(utc(2200, 1, 1, 4, 59)) is None
    assert cron.next_after(datetime.max.replace(tzinfo=UTC)) is None


def test_expression_and_timezone_are_as_given():
    cron = ZonedCron.parse("cron(0 9 ? * MON-FRI *)", "Europe/Paris")
    assert cron.expression == "cron(0 9 ? * MON-FRI *)"
    assert cron.timezone == "Europe/Paris"


# --- zone names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Etc/GMT+5", "US/Eastern"]
)
def test_iana_names_are_known(name):
    assert zone_named(name).key == name
    assert name in zone_names()


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Mars/Olympus_Mons",
        "europe/paris",  # spelt exactly
        " Europe/Paris",
        "Europe/Paris/",
        "../../../../etc/passwd",
        "/usr/share/zoneinfo/Europe/Paris",
        "Europe/../Europe/Paris",
        "Europe\\Paris",
        "Europe/Paris\x00",
        "zoneinfo/Europe/Paris",
        "x" * 10_000,
        "posixrules",
        "localtime",
        None,
        42,
        ["Europe/Paris"],
    ],
)
def test_anything_else_is_an_unknown_zone(name):
    with pytest.raises(UnknownZone):
        zone_named(name)


ZONES_WITHOUT_A_SYSTEM_DATABASE = textwrap.dedent(
    """
    from datetime import UTC, datetime

    from task_scheduler.zoned_cron import ZonedCron

    cron = ZonedCron.parse("cron(0 9 * * ? *)", "Europe/Paris")
    print(cron.next_after(datetime(2027, 6, 1, tzinfo=UTC)).isoformat())
    """
)


def test_zones_come_from_the_tzdata_package_not_the_machine(tmp_path):
    # As on a Lambda runtime without a time zone database: no system path to look in.
    layer = Path(__file__).resolve().parents[2] / "scheduler_layer"
    env = {**os.environ, "PYTHONPATH": str(layer), "PYTHONTZPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", ZONES_WITHOUT_A_SYSTEM_DATABASE],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.strip() == "2027-06-01T07:00:00+00:00"
