"""Unit tests for task_scheduler.cron (EventBridge cron expressions).

Expected datetimes were worked out by hand against Python's calendar module and are
asserted as literals so a regression in the weekday arithmetic cannot hide.
"""

import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from task_scheduler.cron import CronError, CronSchedule, parse_cron
from tests.support.cron import occurrences_after


def utc(year, month, day, hour=0, minute=0, second=0, microsecond=0):
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def problem_of(expression):
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    return caught.value.problem


# --- valid examples from the AWS documentation ----------------------------------------


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        # Every day at 10:00; "strictly after" skips an occurrence at the moment itself.
        (
            "cron(0 10 * * ? *)",
            utc(2026, 3, 10, 10, 0),
            [utc(2026, 3, 11, 10), utc(2026, 3, 12, 10)],
        ),
        ("cron(0 10 * * ? *)", utc(2026, 3, 10, 9, 59, 59), [utc(2026, 3, 10, 10)]),
        # 12:15 daily, across a year boundary.
        (
            "cron(15 12 * * ? *)",
            utc(2026, 12, 31, 12, 15),
            [utc(2027, 1, 1, 12, 15), utc(2027, 1, 2, 12, 15)],
        ),
        # 18:00 Mon-Fri: Friday 2026-03-13 -> Monday 2026-03-16.
        (
            "cron(0 18 ? * MON-FRI *)",
            utc(2026, 3, 13, 18, 0),
            [utc(2026, 3, 16, 18), utc(2026, 3, 17, 18)],
        ),
        # 08:00 on the 1st of every month.
        (
            "cron(0 8 1 * ? *)",
            utc(2026, 1, 31, 23, 59),
            [utc(2026, 2, 1, 8), utc(2026, 3, 1, 8), utc(2026, 4, 1, 8)],
        ),
        # Every 15 minutes, across midnight.
        (
            "cron(0/15 * * * ? *)",
            utc(2026, 5, 5, 23, 50),
            [
                utc(2026, 5, 6, 0, 0),
                utc(2026, 5, 6, 0, 15),
                utc(2026, 5, 6, 0, 30),
                utc(2026, 5, 6, 0, 45),
                utc(2026, 5, 6, 1, 0),
            ],
        ),
        # Every 10 minutes Mon-Fri: Friday night jumps to Monday midnight.
        (
            "cron(0/10 * ? * MON-FRI *)",
            utc(2026, 3, 13, 23, 55),
            [utc(2026, 3, 16, 0, 0), utc(2026, 3, 16, 0, 10)],
        ),
        # Every 5 minutes 08:00-17:55 Mon-Fri.
        (
            "cron(0/5 8-17 ? * MON-FRI *)",
            utc(2026, 3, 13, 17, 55),
            [utc(2026, 3, 16, 8, 0), utc(2026, 3, 16, 8, 5)],
        ),
        (
            "cron(0/5 8-17 ? * MON-FRI *)",
            utc(2026, 3, 16, 17, 53),
            [utc(2026, 3, 16, 17, 55), utc(2026, 3, 17, 8, 0)],
        ),
        # 09:00 on the first Monday of every month.
        (
            "cron(0 9 ? * 2#1 *)",
            utc(2026, 1, 1),
            [utc(2026, 1, 5, 9), utc(2026, 2, 2, 9), utc(2026, 3, 2, 9), utc(2026, 4, 6, 9)],
        ),
    ],
)
def test_aws_documented_examples(expression, moment, expected):
    schedule = parse_cron(expression)
    assert schedule.next_after(moment) == expected[0]
    assert occurrences_after(schedule, moment, len(expected)) == expected


def test_results_are_whole_minutes_in_utc():
    result = parse_cron("cron(0/15 * * * ? *)").next_after(utc(2026, 1, 1, 0, 7, 42, 123456))
    assert result == utc(2026, 1, 1, 0, 15)
    assert (result.second, result.microsecond) == (0, 0)
    assert result.tzinfo is UTC


def test_next_after_ignores_seconds_within_the_occurrence_minute():
    # 10:00:30 is inside the 10:00 occurrence's minute, which is not strictly after it.
    schedule = parse_cron("cron(0 10 * * ? *)")
    assert schedule.next_after(utc(2026, 3, 10, 10, 0, 30)) == utc(2026, 3, 11, 10)


def test_first_at_or_after_includes_exact_moment():
    schedule = parse_cron("cron(0 10 * * ? *)")
    assert schedule.first_at_or_after(utc(2026, 3, 10, 10, 0)) == utc(2026, 3, 10, 10)


def test_first_at_or_after_rounds_up_to_whole_minute():
    schedule = parse_cron("cron(0 10 * * ? *)")
    assert schedule.first_at_or_after(utc(2026, 3, 10, 10, 0, 0, 1)) == utc(2026, 3, 11, 10)
    assert schedule.first_at_or_after(utc(2026, 3, 10, 9, 59, 1)) == utc(2026, 3, 10, 10)


# --- value lists, ranges, steps and names -----------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(5-20/7 0 1 1 ? 2027)", [utc(2027, 1, 1, 0, m) for m in (5, 12, 19)]),
        ("cron(50/4 0 1 1 ? 2027)", [utc(2027, 1, 1, 0, m) for m in (50, 54, 58)]),
        ("cron(*/20 0 1 1 ? 2027)", [utc(2027, 1, 1, 0, m) for m in (0, 20, 40)]),
        ("cron(1,3,2 0 1 1 ? 2027)", [utc(2027, 1, 1, 0, m) for m in (1, 2, 3)]),
        ("cron(0 22/1 1 1 ? 2027)", [utc(2027, 1, 1, 22), utc(2027, 1, 1, 23)]),
    ],
)
def test_lists_ranges_and_steps(expression, expected):
    assert occurrences_after(parse_cron(expression), utc(2026, 1, 1), 10) == expected


def test_month_names_are_case_insensitive_in_lists_and_ranges():
    lists = parse_cron("cron(0 0 1 jan,Mar ? 2027)")
    assert occurrences_after(lists, utc(2026, 1, 1), 5) == [utc(2027, 1, 1), utc(2027, 3, 1)]
    ranges = parse_cron("cron(0 0 1 NOV-dec ? 2027)")
    assert occurrences_after(ranges, utc(2026, 1, 1), 5) == [utc(2027, 11, 1), utc(2027, 12, 1)]


def test_day_names_are_case_insensitive():
    # 2026-03-14 is a Saturday; sat,Sun -> 14th and 15th.
    schedule = parse_cron("cron(0 0 ? MAR sat,Sun 2026)")
    assert occurrences_after(schedule, utc(2026, 3, 10), 2) == [utc(2026, 3, 14), utc(2026, 3, 15)]


def test_day_of_week_numbers_run_sunday_1_to_saturday_7():
    # 2026-03-15 is a Sunday and 2026-03-21 a Saturday.
    assert parse_cron("cron(0 0 ? * 1 *)").next_after(utc(2026, 3, 13)) == utc(2026, 3, 15)
    assert parse_cron("cron(0 0 ? * 7 *)").next_after(utc(2026, 3, 15)) == utc(2026, 3, 21)


def test_question_mark_in_day_of_month_with_star_day_of_week_means_every_day():
    schedule = parse_cron("cron(0 0 ? * * *)")
    assert occurrences_after(schedule, utc(2026, 2, 27), 3) == [
        utc(2026, 2, 28),
        utc(2026, 3, 1),
        utc(2026, 3, 2),
    ]


def test_year_step():
    schedule = parse_cron("cron(0 0 1 1 ? 2026/3)")
    assert occurrences_after(schedule, utc(2026, 1, 1), 3) == [
        utc(2029, 1, 1),
        utc(2032, 1, 1),
        utc(2035, 1, 1),
    ]


def test_multiple_spaces_between_fields_are_accepted():
    schedule = parse_cron("cron(0  10   * * ? *)")
    assert schedule.next_after(utc(2026, 3, 10)) == utc(2026, 3, 10, 10)


# --- L, W and # semantics ---------------------------------------------------------------


def test_last_day_of_february_in_leap_and_common_years():
    schedule = parse_cron("cron(0 12 L 2 ? *)")
    assert occurrences_after(schedule, utc(2026, 1, 1), 4) == [
        utc(2026, 2, 28, 12),
        utc(2027, 2, 28, 12),
        utc(2028, 2, 29, 12),
        utc(2029, 2, 28, 12),
    ]


def test_29_february_only_in_leap_years():
    assert parse_cron("cron(0 0 29 2 ? *)").next_after(utc(2026, 1, 1)) == utc(2028, 2, 29)


def test_day_31_skips_short_months():
    schedule = parse_cron("cron(0 0 31 * ? 2026)")
    assert occurrences_after(schedule, utc(2026, 1, 31), 3) == [
        utc(2026, 3, 31),
        utc(2026, 5, 31),
        utc(2026, 7, 31),
    ]


def test_last_weekday_of_month():
    # Jan 31 is a Saturday -> 30th; Feb 28 Saturday -> 27th; Mar 31 Tuesday;
    # Apr 30 Thursday; May 31 Sunday -> 29th.
    schedule = parse_cron("cron(0 0 LW * ? 2026)")
    assert occurrences_after(schedule, utc(2026, 1, 1), 5) == [
        utc(2026, 1, 30),
        utc(2026, 2, 27),
        utc(2026, 3, 31),
        utc(2026, 4, 30),
        utc(2026, 5, 29),
    ]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("cron(0 0 15W 8 ? 2026)", utc(2026, 8, 14)),  # Sat 15 Aug -> Fri 14
        ("cron(0 0 15W 2 ? 2026)", utc(2026, 2, 16)),  # Sun 15 Feb -> Mon 16
        ("cron(0 0 15W 4 ? 2026)", utc(2026, 4, 15)),  # Wed 15 Apr stays
        ("cron(0 0 1W 8 ? 2026)", utc(2026, 8, 3)),  # Sat 1 Aug -> Mon 3, not Fri 31 Jul
        ("cron(0 0 1W 2 ? 2026)", utc(2026, 2, 2)),  # Sun 1 Feb -> Mon 2
        ("cron(0 0 31W 5 ? 2026)", utc(2026, 5, 29)),  # Sun 31 May -> Fri 29, not Mon 1 Jun
        ("cron(0 0 31W 1 ? 2026)", utc(2026, 1, 30)),  # Sat 31 Jan -> Fri 30
    ],
)
def test_nearest_weekday(expression, expected):
    assert parse_cron(expression).next_after(utc(2026, 1, 1)) == expected


def test_nearest_weekday_beyond_month_length_never_matches_that_month():
    # April has 30 days, so 31W has nothing to be near.
    assert parse_cron("cron(0 0 31W 4 ? *)").next_after(utc(2026, 1, 1)) is None


def test_last_friday_of_month():
    schedule = parse_cron("cron(0 0 ? * 6L *)")
    assert occurrences_after(schedule, utc(2026, 1, 1), 4) == [
        utc(2026, 1, 30),
        utc(2026, 2, 27),
        utc(2026, 3, 27),
        utc(2026, 4, 24),
    ]


def test_fifth_monday_skips_months_without_one():
    # 2026 months with five Mondays: March, June, August, November.
    schedule = parse_cron("cron(0 0 ? * 2#5 *)")
    assert occurrences_after(schedule, utc(2026, 1, 1), 4) == [
        utc(2026, 3, 30),
        utc(2026, 6, 29),
        utc(2026, 8, 31),
        utc(2026, 11, 30),
    ]


def test_second_tuesday():
    schedule = parse_cron("cron(0 0 ? * 3#2 *)")
    assert occurrences_after(schedule, utc(2026, 1, 1), 3) == [
        utc(2026, 1, 13),
        utc(2026, 2, 10),
        utc(2026, 3, 10),
    ]


def test_day_of_week_l_alone_is_every_saturday():
    schedule = parse_cron("cron(0 0 ? * L *)")
    assert occurrences_after(schedule, utc(2026, 1, 1), 3) == [
        utc(2026, 1, 3),
        utc(2026, 1, 10),
        utc(2026, 1, 17),
    ]


# --- no future occurrence ---------------------------------------------------------------


def test_past_year_has_no_next_occurrence():
    assert parse_cron("cron(0 0 1 1 ? 2020)").next_after(utc(2026, 1, 1)) is None


@pytest.mark.parametrize("expression", ["cron(0 0 30 2 ? *)", "cron(0 0 31 2 ? *)"])
def test_impossible_date_returns_none_quickly(expression):
    schedule = parse_cron(expression)
    started = time.perf_counter()
    assert schedule.next_after(utc(1970, 1, 1)) is None
    assert occurrences_after(schedule, utc(1970, 1, 1), 5) == []
    # Minute-by-minute scanning to 2199 would take minutes; month skipping takes ms.
    assert time.perf_counter() - started < 1.0


def test_nothing_after_the_last_supported_year():
    schedule = parse_cron("cron(59 23 31 12 ? *)")
    assert schedule.next_after(utc(2199, 12, 31, 23, 58)) == utc(2199, 12, 31, 23, 59)
    assert schedule.next_after(utc(2199, 12, 31, 23, 59)) is None
    assert schedule.next_after(utc(2200, 6, 1)) is None
    assert schedule.first_at_or_after(utc(2200, 6, 1)) is None
    assert schedule.next_after(datetime.max.replace(tzinfo=UTC)) is None


def test_moment_before_1970_finds_the_first_supported_year():
    assert parse_cron("cron(0 0 1 1 ? *)").next_after(utc(1900, 5, 5)) == utc(1970, 1, 1)


def test_occurrences_after_stops_when_schedule_runs_out():
    schedule = parse_cron("cron(30 17 19 5 ? 2030)")
    assert occurrences_after(schedule, utc(2026, 1, 1), 3) == [utc(2030, 5, 19, 17, 30)]


# --- datetimes that are not aware UTC ---------------------------------------------------


@pytest.mark.parametrize("method", ["next_after", "first_at_or_after"])
def test_naive_datetime_is_rejected(method):
    schedule = parse_cron("cron(0 10 * * ? *)")
    with pytest.raises(ValueError, match="naive"):
        getattr(schedule, method)(datetime(2026, 1, 1))


def test_non_utc_offset_is_rejected():
    plus_two = timezone(timedelta(hours=2))
    with pytest.raises(ValueError, match="UTC"):
        parse_cron("cron(0 10 * * ? *)").next_after(datetime(2026, 1, 1, tzinfo=plus_two))


def test_other_zero_offset_tzinfo_is_treated_as_utc():
    zero = timezone(timedelta(0), "Z")
    result = parse_cron("cron(0 10 * * ? *)").next_after(datetime(2026, 1, 1, tzinfo=zero))
    assert result == utc(2026, 1, 1, 10)
    assert result.tzinfo is UTC


# --- invalid expressions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected_problem"),
    [
        ("cron(0 18 * * * *)", "day-of-month and day-of-week: exactly one must be '?'"),
        ("cron(0 18 ? * ? *)", "day-of-month and day-of-week: exactly one must be '?'"),
        ("cron(0 18 1 * 2 *)", "day-of-month and day-of-week: exactly one must be '?'"),
        ("cron(99 99 * * ? *)", "minutes: 99 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours: 24 is outside 0-23"),
        ("cron(0 0 0 * ? *)", "day-of-month: 0 is outside 1-31"),
        ("cron(0 0 32 * ? *)", "day-of-month: 32 is outside 1-31"),
        ("cron(0 0 1 13 ? *)", "month: 13 is outside 1-12"),
        ("cron(0 0 ? * 8 *)", "day-of-week: 8 is outside 1-7"),
        ("cron(0 0 ? * 0 *)", "day-of-week: 0 is outside 1-7"),
        ("cron(0 0 1 1 ? 2200)", "year: 2200 is outside 1970-2199"),
        ("cron(0 0 1 1 ? 1969)", "year: 1969 is outside 1970-2199"),
        ("cron(0 0 5-1 * ? *)", "day-of-month: range '5-1' is descending"),
        ("cron(0 0 ? * FRI-MON *)", "day-of-week: range 'FRI-MON' is descending"),
        ("cron(0 0 ? * 1/2 *)", "day-of-week: '/' increments are not allowed"),
        ("cron(a b c d e f)", "minutes: unexpected character 'a'"),
        ("cron(0 18 ? ? * *)", "month: '?' is only allowed in day-of-month or day-of-week"),
    ],
)
def test_invalid_expression_problem(expression, expected_problem):
    assert problem_of(expression) == expected_problem


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("cron(0 0 ? * 3#1,6#3 *)", "day-of-week"),  # AWS: '#' allows one expression only
        ("cron(0 0 ? * 3#0 *)", "day-of-week"),
        ("cron(0 0 ? * 3#6 *)", "day-of-week"),
        ("cron(0 0 ? * 8#1 *)", "day-of-week"),
        ("cron(0 0 ? * 8L *)", "day-of-week"),
        ("cron(0 0 ? * 6L,2 *)", "day-of-week"),
        ("cron(0 0 ? * L-2 *)", "day-of-week"),
        ("cron(0 0 L,15 * ? *)", "day-of-month"),
        ("cron(0 0 1-5W * ? *)", "day-of-month"),
        ("cron(0 0 LW,1 * ? *)", "day-of-month"),
        ("cron(0 0 32W * ? *)", "day-of-month"),
        ("cron(0 0 0W * ? *)", "day-of-month"),
        ("cron(0 0 W * ? *)", "day-of-month"),
        ("cron(0 0 ?,1 * * *)", "day-of-month"),
        ("cron(0 0 # * ? *)", "day-of-month"),
        ("cron(0 0 1 * ? #)", "year"),
        ("cron(0 0 1 L ? *)", "month"),
        ("cron(0 0 1L * ? *)", "day-of-month"),
        ("cron(1,,2 * * * ? *)", "minutes"),
        ("cron(1, * * * ? *)", "minutes"),
        ("cron(,1 * * * ? *)", "minutes"),
        ("cron(-1 * * * ? *)", "minutes"),
        ("cron(1- * * * ? *)", "minutes"),
        ("cron(0/0 * * * ? *)", "minutes"),
        ("cron(0/ * * * ? *)", "minutes"),
        ("cron(/5 * * * ? *)", "minutes"),
        ("cron(1/2/3 * * * ? *)", "minutes"),
        ("cron(1-2-3 * * * ? *)", "minutes"),
        ("cron(*-5 * * * ? *)", "minutes"),
        ("cron(? 0 * * ? *)", "minutes"),
        ("cron(0 +1 * * ? *)", "hours"),
        ("cron(0 1.5 * * ? *)", "hours"),
        ("cron(0 0 * FOO ? *)", "month"),
        ("cron(0 0 * JANUARY ? *)", "month"),
        ("cron(0 0 ? * MONDAY *)", "day-of-week"),
        ("cron(0 0 * * ? 99999999999999999999)", "year"),
        ("cron(0 0 * * ? \u0662\u0660\u0662\u0666)", "year"),  # Arabic-Indic digits
    ],
)
def test_invalid_expression_names_field(expression, field):
    assert problem_of(expression).startswith(f"{field}: ")


def test_hash_form_is_single_expression_only():
    assert "'#'" in problem_of("cron(0 0 ? * 3#1,6#3 *)")


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 18 * * ?)",  # five fields
        "cron(0 0 18 * * ? *)",  # seven fields (seconds-first Quartz style)
        "cron()",
        "cron(0)",
    ],
)
def test_wrong_field_count(expression):
    assert "6 fields" in problem_of(expression)


def test_rate_expressions_are_not_supported():
    problem = problem_of("rate(1 minutes)")
    assert "only cron(...)" in problem


@pytest.mark.parametrize(
    "expression",
    [
        " cron(0 10 * * ? *)",
        "cron(0 10 * * ? *) ",
        "CRON(0 10 * * ? *)",
        "cron 0 10 * * ? *",
        "cron(0 10 * * ? *",
        "0 10 * * ? *",
        "",
    ],
)
def test_wrapper_must_be_exactly_cron_parentheses(expression):
    assert "cron(" in problem_of(expression)


@pytest.mark.parametrize(
    "expression",
    ["cron( 0 10 * * ? *)", "cron(0 10 * * ? * )", "cron(0\t10 * * ? *)", "cron(0 10 * *\n? *)"],
)
def test_only_plain_spaces_between_fields(expression):
    assert "space" in problem_of(expression)


def test_non_string_is_rejected():
    with pytest.raises(CronError):
        parse_cron(None)


def test_overlong_expression_is_rejected():
    expression = "cron(" + ",".join(["1"] * 200) + " * * * ? *)"
    assert len(expression) > 256
    assert "256" in problem_of(expression)


# --- grammar decisions where the AWS docs are silent (reject when unsure) ----------------


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("cron(*,5 10 * * ? *)", "minutes"),  # '*' inside a list
        ("cron(0/60 * * * ? *)", "minutes"),  # step wider than the field
        ("cron(0 0 1/31 * ? *)", "day-of-month"),
        ("cron(0 0 1 JAN/2 ? *)", "month"),  # increment from a name
        ("cron(0 0 1 1-FEB ? *)", "month"),  # range mixing a number and a name
        ("cron(0 0 ? * MON#2 *)", "day-of-week"),  # name with '#'
        ("cron(0 0 ? * FRIL *)", "day-of-week"),  # name with 'L'
        ("cron(0 0 L-3 * ? *)", "day-of-month"),  # Quartz offset-from-last form
        ("cron(0 0 l * ? *)", "day-of-month"),  # lowercase L
        ("cron(0 0 15w * ? *)", "day-of-month"),  # lowercase W
    ],
)
def test_undocumented_forms_are_rejected(expression, field):
    assert problem_of(expression).startswith(f"{field}: ")


# --- is_single_moment -------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "cron(30 17 19 5 ? 2030)",
        "cron(0 9 ? 5 2#1 2030)",
        "cron(0 9 ? 5 6L 2030)",
        "cron(0 9 L 5 ? 2030)",
        "cron(0 9 LW 5 ? 2030)",
        "cron(0 9 15W 5 ? 2030)",
        "cron(0 9 19-19 MAY ? 2030)",
    ],
)
def test_is_single_moment_true(expression):
    assert parse_cron(expression).is_single_moment() is True


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 9 ? 5 2 2030)",  # every Monday of May 2030
        "cron(0 9 ? 5 L 2030)",  # every Saturday of May 2030
        "cron(0 10 * * ? *)",
        "cron(0,30 9 1 1 ? 2030)",
        "cron(0 9,10 1 1 ? 2030)",
        "cron(0 9 1,2 1 ? 2030)",
        "cron(0 9 1 1,2 ? 2030)",
        "cron(0 9 1 1 ? 2030-2031)",
        "cron(0 9 L 5 ? *)",
    ],
)
def test_is_single_moment_false(expression):
    assert parse_cron(expression).is_single_moment() is False


def test_single_moment_expression_occurs_once():
    schedule = parse_cron("cron(0 9 ? 5 2#1 2030)")
    # 1 May 2030 is a Wednesday, so the first Monday is the 6th.
    assert occurrences_after(schedule, utc(2026, 1, 1), 5) == [utc(2030, 5, 6, 9)]


# --- module-level helpers and the dataclass ---------------------------------------------


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("cron(" + "0," * 115 + " 0 ? * * *)", "minutes"),  # an empty entry ends the list
        ("cron(0 0 1 " + "A" * 230 + " ? *)", "month"),  # not a month name
        ("cron(-" + "1" * 230 + " 0 ? * * *)", "minutes"),  # a range without its start
    ],
    ids=["list", "name", "range"],
)
def test_long_fields_are_quoted_at_most_200_characters(expression, field):
    assert len(expression) <= 256
    problem = problem_of(expression)
    assert problem.startswith(f"{field}: ")
    quoted = problem.split("'")[1]
    assert len(quoted) == 200 + len("...")
    assert quoted.endswith("...")
    assert quoted[:200] in expression


def test_cron_error_is_a_value_error_with_problem():
    with pytest.raises(ValueError, match="outside") as caught:
        parse_cron("cron(99 * * * ? *)")
    assert isinstance(caught.value, CronError)
    assert caught.value.problem == "minutes: 99 is outside 0-59"
    assert str(caught.value) == "minutes: 99 is outside 0-59"


def test_schedule_keeps_original_text_and_compares_by_it():
    text = "cron(0 18 ? * mon-fri *)"
    schedule = parse_cron(text)
    assert schedule.expression == text
    assert schedule == CronSchedule(text)
    assert hash(schedule) == hash(CronSchedule(text))
    assert schedule != parse_cron("cron(0 18 ? * MON-FRI *)")


def test_constructing_schedule_directly_validates():
    with pytest.raises(CronError):
        CronSchedule("cron(0 18 * * * *)")


def test_schedule_is_immutable():
    schedule = parse_cron("cron(0 10 * * ? *)")
    with pytest.raises(AttributeError):
        schedule.expression = "cron(0 11 * * ? *)"


def test_leading_zeros_are_accepted_as_aws_does():
    schedule = parse_cron("cron(05 08 01 * ? *)")
    assert schedule.next_after(utc(2026, 1, 31, 23, 59)) == utc(2026, 2, 1, 8, 5)
