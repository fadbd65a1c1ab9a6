"""Unit tests for task_scheduler.timing: `run_at` parsing and the trigger timing rules.

Contract section 4 (Time) and the `run_at` part of section 1.
"""

from datetime import UTC, datetime, timedelta, timezone
from random import Random

import pytest

from task_scheduler.errors import InvalidRequest
from task_scheduler.timing import (
    MAX_RETRY_AFTER_SECONDS,
    MAX_YEAR,
    RETRY_BASE_SECONDS,
    RETRY_CAP_SECONDS,
    ceil_to_second,
    format_utc,
    minute_start,
    one_shot_rule_expression,
    parse_run_at,
    parse_stored_utc,
    queue_delay_seconds,
    retry_delay,
    seconds_until,
    trigger_minute,
    within_queue_horizon,
)

NOW = datetime(2030, 5, 19, 17, 0, 0, tzinfo=UTC)


def utc(year, month, day, hour=0, minute=0, second=0, microsecond=0):
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def run_at_problem(value, now=NOW):
    """The single problem parse_run_at reports for `value`; it must name the field `run_at`."""
    with pytest.raises(InvalidRequest) as caught:
        parse_run_at(value, now)
    problems = caught.value.problems
    assert len(problems) == 1
    assert problems[0].field == "run_at"
    return problems[0].problem


# --- ISO 8601 times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-05-19T17:56:00Z", "2030-05-19T17:56:00Z"),
        ("2030-05-19T19:56:00+02:00", "2030-05-19T17:56:00Z"),
        ("2030-05-19T12:26:00-05:30", "2030-05-19T17:56:00Z"),
        ("2030-05-19T17:56:00+00:00", "2030-05-19T17:56:00Z"),
        # An offset that moves the time across midnight, a month and a year.
        ("2030-12-31T23:30:00-01:00", "2031-01-01T00:30:00Z"),
        ("2031-01-01T01:00:00+02:00", "2030-12-31T23:00:00Z"),
    ],
)
def test_iso_time_is_normalised_to_utc(text, expected):
    schedule = parse_run_at(text, NOW)
    assert schedule.run_at == expected
    assert schedule.first_run_at == datetime.strptime(expected, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=UTC
    )
    assert schedule.first_run_at.tzinfo is UTC
    assert schedule.cron is None
    assert schedule.recurring is False


def test_iso_time_surrounding_whitespace_is_ignored():
    assert parse_run_at("  2030-05-19T17:56:00Z  ", NOW).run_at == "2030-05-19T17:56:00Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-05-19T17:56:00.2Z", utc(2030, 5, 19, 17, 56, 1)),
        ("2030-05-19T17:56:00.000001Z", utc(2030, 5, 19, 17, 56, 1)),
        ("2030-05-19T17:56:00.999999Z", utc(2030, 5, 19, 17, 56, 1)),
        ("2030-05-19T17:59:59.5Z", utc(2030, 5, 19, 18, 0, 0)),
        ("2030-05-19T17:56:00.000Z", utc(2030, 5, 19, 17, 56, 0)),
    ],
)
def test_fractional_seconds_round_up_never_down(text, expected):
    schedule = parse_run_at(text, NOW)
    assert schedule.first_run_at == expected
    assert schedule.first_run_at.microsecond == 0
    assert schedule.run_at == format_utc(expected)


def test_time_without_offset_is_rejected_with_a_hint_to_add_z():
    problem = run_at_problem("2030-05-19T17:56:00")
    assert "no UTC offset" in problem
    assert "add Z" in problem
    assert "2030-05-19T17:56:00Z" in problem


def test_long_time_without_offset_is_quoted_at_most_200_characters():
    text = "2030-05-19T17:56:00." + "0" * 250_000  # valid ISO 8601, but no offset
    problem = run_at_problem(text)
    assert "no UTC offset" in problem
    assert "add Z" in problem
    assert ("2030-05-19T17:56:00." + "0" * (200 - 20) + "...") in problem
    assert "0" * 181 not in problem


@pytest.mark.parametrize(
    "text",
    ["tomorrow", "2030-13-01T00:00:00Z", "2030-05-32T10:00:00Z", "17:56", "2030-05-19T25:00:00Z"],
)
def test_unparseable_time_is_rejected(text):
    problem = run_at_problem(text)
    assert problem.startswith("is not a valid time")


def test_year_2200_is_rejected():
    problem = run_at_problem("2200-01-01T00:00:00Z")
    assert problem == f"must not be later than the year {MAX_YEAR}"
    assert MAX_YEAR == 2199


def test_offset_moving_the_time_into_2200_is_rejected():
    problem = run_at_problem("2199-12-31T23:30:00-01:00")
    assert problem == "must not be later than the year 2199"


def test_last_second_of_2199_is_accepted():
    schedule = parse_run_at("2199-12-31T23:59:59Z", NOW)
    assert schedule.run_at == "2199-12-31T23:59:59Z"
    assert schedule.first_run_at == utc(2199, 12, 31, 23, 59, 59)


def test_fraction_rounding_into_2200_is_rejected():
    problem = run_at_problem("2199-12-31T23:59:59.5Z")
    assert problem == "must not be later than the year 2199"


def test_fraction_at_the_end_of_year_9999_is_a_400_not_a_crash():
    # Rounding 9999-12-31T23:59:59.5 up overflows datetime; it must still be a field problem
    # (contract section 2: bad input is never a 5xx).
    problem = run_at_problem("9999-12-31T23:59:59.5Z")
    assert problem == "must not be later than the year 2199"


def test_time_in_year_one_shifted_before_year_one_is_reported_as_past():
    # 0001-01-01T00:00+01:00 is 0000-12-31T23:00Z: in the past, not "later than 2199".
    problem = run_at_problem("0001-01-01T00:00:00+01:00")
    assert problem.startswith("must be in the future")


@pytest.mark.parametrize(
    "text",
    [
        "2030-05-19T16:59:59Z",  # one second ago
        "2030-05-19T17:00:00Z",  # exactly now
        "2030-05-19T19:00:00+02:00",  # exactly now, another offset
        "2020-01-01T00:00:00Z",
    ],
)
def test_past_or_present_time_is_rejected(text):
    problem = run_at_problem(text)
    assert problem.startswith("must be in the future")
    assert "now is 2030-05-19T17:00:00Z" in problem


def test_one_second_ahead_is_accepted():
    schedule = parse_run_at("2030-05-19T17:00:01Z", NOW)
    assert schedule.first_run_at == NOW + timedelta(seconds=1)


def test_fraction_of_now_rounds_into_the_future_and_is_accepted():
    now = utc(2030, 5, 19, 17, 0, 0, 500_000)
    schedule = parse_run_at("2030-05-19T17:00:00.7Z", now)
    assert schedule.run_at == "2030-05-19T17:00:01Z"


@pytest.mark.parametrize("value", [1758304560, 17.5, True, ["2030-05-19T17:56:00Z"], {"at": 1}])
def test_non_string_run_at_is_rejected(value):
    problem = run_at_problem(value)
    assert problem.startswith("must be a string")


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_or_blank_run_at_is_required(value):
    assert run_at_problem(value) == "is required"


def test_naive_now_raises_value_error():
    with pytest.raises(ValueError, match="naive"):
        parse_run_at("2030-05-19T17:56:00Z", datetime(2030, 5, 19, 17, 0))


# --- cron expressions -------------------------------------------------------------------------


def test_recurring_cron_keeps_the_expression_and_starts_at_the_next_occurrence():
    schedule = parse_run_at("cron(0/15 * * * ? *)", utc(2030, 5, 19, 17, 7, 30))
    assert schedule.run_at == "cron(0/15 * * * ? *)"
    assert schedule.first_run_at == utc(2030, 5, 19, 17, 15)
    assert schedule.cron is not None
    assert schedule.cron.expression == "cron(0/15 * * * ? *)"
    assert schedule.recurring is True


def test_cron_occurrence_at_now_is_not_the_first_run():
    schedule = parse_run_at("cron(0 10 * * ? *)", utc(2030, 5, 19, 10, 0))
    assert schedule.first_run_at == utc(2030, 5, 20, 10, 0)


def test_cron_with_names_and_weekdays():
    # 2030-05-19 is a Sunday; the next weekday 18:00 is Monday the 20th.
    schedule = parse_run_at("cron(0 18 ? * MON-FRI *)", utc(2030, 5, 19, 18, 30))
    assert schedule.first_run_at == utc(2030, 5, 20, 18, 0)
    assert schedule.recurring is True


def test_single_moment_cron_is_not_recurring():
    schedule = parse_run_at("cron(30 9 1 JAN ? 2031)", NOW)
    assert schedule.run_at == "cron(30 9 1 JAN ? 2031)"
    assert schedule.first_run_at == utc(2031, 1, 1, 9, 30)
    assert schedule.recurring is False
    assert schedule.cron.next_after(schedule.first_run_at) is None


def test_recurring_schedule_next_after():
    schedule = parse_run_at("cron(0 12 * * ? *)", NOW)
    assert schedule.cron.next_after(utc(2030, 5, 20, 12, 0)) == utc(2030, 5, 21, 12, 0)


@pytest.mark.parametrize(
    "text",
    [
        "cron(0 18 * * * *)",  # '?' in neither day field
        "cron(0 18 ? * ? *)",  # '?' in both
        "cron(99 99 * * ? *)",
        "cron(0 18 * * ?)",  # five fields
        "cron(0 18 * * ? * *)",  # seven fields
        "cron(0 18 * * ? 2200)",  # beyond 2199
        "rate(1 minutes)",
        "rate(5 minutes)",
        "cron()",
    ],
)
def test_invalid_cron_is_rejected_naming_run_at(text):
    problem = run_at_problem(text)
    assert problem.startswith("is not a valid EventBridge cron expression: ")
    assert len(problem) > len("is not a valid EventBridge cron expression: ")


def test_cron_without_a_future_occurrence_is_rejected():
    assert run_at_problem("cron(0 0 1 1 ? 2020)") == (
        "is a cron expression with no future occurrence"
    )


def test_cron_whose_last_occurrence_is_now_is_rejected():
    assert run_at_problem("cron(0 17 19 5 ? 2030)") == (
        "is a cron expression with no future occurrence"
    )


# --- formatting -------------------------------------------------------------------------------


def test_format_utc_converts_offsets_and_drops_fractions():
    plus_two = timezone(timedelta(hours=2))
    assert format_utc(datetime(2030, 5, 19, 19, 56, 7, 999_999, tzinfo=plus_two)) == (
        "2030-05-19T17:56:07Z"
    )


def test_format_utc_pads_fields():
    assert format_utc(utc(2031, 1, 2, 3, 4, 5)) == "2031-01-02T03:04:05Z"


def test_parse_stored_utc_reads_back_format_utc():
    moment = utc(2030, 5, 19, 17, 56, 1)
    assert parse_stored_utc(format_utc(moment)) == moment
    assert parse_stored_utc("2030-05-19T17:56:01Z").tzinfo is UTC


@pytest.mark.parametrize(
    "call",
    [
        lambda naive: format_utc(naive),
        lambda naive: minute_start(naive),
        lambda naive: one_shot_rule_expression(naive),
        lambda naive: within_queue_horizon(naive, NOW),
        lambda naive: queue_delay_seconds(NOW, naive),
        lambda naive: trigger_minute(naive),
        lambda naive: seconds_until(naive, NOW),
        lambda naive: seconds_until(NOW, naive),
    ],
)
def test_naive_datetimes_raise_value_error(call):
    with pytest.raises(ValueError, match="naive datetime"):
        call(datetime(2030, 5, 19, 17, 0))


# --- trigger timing ---------------------------------------------------------------------------


def test_one_shot_rule_expression_matches_the_minute():
    assert one_shot_rule_expression(utc(2030, 5, 19, 17, 56, 30)) == "cron(56 17 19 5 ? 2030)"
    assert one_shot_rule_expression(utc(2031, 1, 2, 3, 4)) == "cron(4 3 2 1 ? 2031)"


def test_one_shot_rule_expression_uses_utc():
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2030, 1, 1, 1, 5, tzinfo=plus_two)  # 2029-12-31T23:05Z
    assert one_shot_rule_expression(moment) == "cron(5 23 31 12 ? 2029)"


def test_minute_start():
    assert minute_start(utc(2030, 5, 19, 17, 56, 42, 123)) == utc(2030, 5, 19, 17, 56)


def test_a_trigger_is_armed_for_the_minute_two_minutes_before_the_occurrences_minute():
    # EventBridge fires it at any second of that minute: always 60 to 180 s before the
    # occurrence, never after it, never beyond the queue's 15 minutes.
    for due in (utc(2030, 5, 19, 17, 56), utc(2030, 5, 19, 17, 56, 59), utc(2030, 1, 1, 0, 1)):
        fires_from = trigger_minute(due)
        assert fires_from.second == 0
        assert timedelta(seconds=60) < due - (fires_from + timedelta(seconds=59.999))
        assert due - fires_from <= timedelta(seconds=179)
    assert trigger_minute(utc(2030, 1, 1, 0, 1, 30)) == utc(2029, 12, 31, 23, 59)


@pytest.mark.parametrize(
    ("due", "within"),
    [
        (NOW + timedelta(seconds=1), True),
        (NOW + timedelta(minutes=15), True),
        (NOW + timedelta(minutes=15, microseconds=1), False),
        (NOW + timedelta(days=3), False),
    ],
)
def test_occurrences_within_15_minutes_go_straight_into_the_queue(due, within):
    assert within_queue_horizon(due, NOW) is within


@pytest.mark.parametrize(
    ("due", "delay"),
    [
        (NOW + timedelta(seconds=30, milliseconds=999), 30),  # lands under a second early
        (NOW + timedelta(seconds=30), 30),
        (NOW + timedelta(milliseconds=400), 0),
        (NOW - timedelta(seconds=5), 0),  # overdue: now
        (NOW + timedelta(minutes=15), 900),
        (NOW + timedelta(hours=2), 900),  # SQS's most; sent on again when it lands
    ],
)
def test_queue_delay_is_rounded_down_and_capped_at_15_minutes(due, delay):
    assert queue_delay_seconds(due, NOW) == delay


@pytest.mark.parametrize(
    ("moment", "now", "expected"),
    [
        (utc(2030, 5, 19, 17, 0, 30), utc(2030, 5, 19, 17, 0, 0), 30.0),
        (utc(2030, 5, 19, 17, 0, 1), utc(2030, 5, 19, 17, 0, 0, 999_999), 0.001),
        (utc(2030, 5, 19, 17, 0, 12), utc(2030, 5, 19, 17, 0, 0, 654_400), 11.346),
        (utc(2030, 5, 19, 17, 0, 0), utc(2030, 5, 19, 17, 0, 0), 0.0),
        (utc(2030, 5, 19, 17, 0, 0), utc(2030, 5, 19, 17, 0, 5), 0.0),
    ],
)
def test_seconds_until_rounds_up_to_the_millisecond(moment, now, expected):
    assert seconds_until(moment, now) == pytest.approx(expected, abs=1e-9)
    # Waiting the answer never ends before `moment`.
    assert now + timedelta(seconds=seconds_until(moment, now)) >= moment


# --- retry backoff ----------------------------------------------------------------------------


def backoff_bound(failed_attempts):
    return min(900.0, 2.0 * 2 ** (failed_attempts - 1))


def test_retry_constants():
    assert RETRY_BASE_SECONDS == 2.0
    assert RETRY_CAP_SECONDS == 900.0
    assert MAX_RETRY_AFTER_SECONDS == 6 * 3600


@pytest.mark.parametrize("failed_attempts", range(1, 13))
def test_retry_delay_is_full_jitter_up_to_the_exponential_bound(failed_attempts):
    bound = backoff_bound(failed_attempts)
    rng = Random(20300519)
    delays = [retry_delay(failed_attempts, None, rng) for _ in range(400)]
    assert all(0 <= delay <= bound for delay in delays)
    # Full jitter: spread over the whole range, not clustered at either end.
    assert min(delays) < 0.05 * bound
    assert max(delays) > 0.95 * bound


@pytest.mark.parametrize("failed_attempts", range(1, 13))
def test_retry_delay_draws_uniformly_from_zero_to_the_bound(failed_attempts):
    expected = Random(7).uniform(0, backoff_bound(failed_attempts))
    assert retry_delay(failed_attempts, None, Random(7)) == expected


def test_retry_delay_bound_doubles_then_stops_at_15_minutes():
    expected = [2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900]
    assert [backoff_bound(n) for n in range(1, 13)] == expected

    # A generator always returning its upper end shows the bound retry_delay uses.
    class Top(Random):
        def uniform(self, a, b):
            return b

    assert [retry_delay(n, None, Top()) for n in range(1, 13)] == expected
    assert retry_delay(40, None, Top()) == 900.0


def test_retry_after_raises_the_floor():
    rng = Random(1)
    for failed_attempts in (1, 2, 3):
        assert retry_delay(failed_attempts, 120.0, rng) == 120.0


def test_retry_after_below_the_jitter_leaves_the_jitter():
    expected = Random(3).uniform(0, 900)
    assert expected > 1
    assert retry_delay(12, 1.0, Random(3)) == expected


def test_retry_after_of_zero_changes_nothing():
    assert retry_delay(4, 0.0, Random(5)) == Random(5).uniform(0, 16)


@pytest.mark.parametrize("retry_after", [6 * 3600 + 1, 86400.0, 10**9])
def test_retry_after_is_honoured_up_to_6_hours(retry_after):
    assert retry_delay(1, retry_after, Random(9)) == 6 * 3600


def test_retry_after_of_exactly_6_hours_is_honoured():
    assert retry_delay(1, 6 * 3600.0, Random(9)) == 6 * 3600.0
    assert retry_delay(1, 6 * 3600.0 - 1, Random(9)) == 6 * 3600.0 - 1


# --- ceil_to_second ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (utc(2030, 5, 19, 17, 56, 0), utc(2030, 5, 19, 17, 56, 0)),
        (utc(2030, 5, 19, 17, 56, 0, 1), utc(2030, 5, 19, 17, 56, 1)),
        (utc(2030, 5, 19, 17, 56, 7, 999_999), utc(2030, 5, 19, 17, 56, 8)),
        (utc(2030, 5, 19, 17, 56, 59, 500_000), utc(2030, 5, 19, 17, 57, 0)),
        (utc(2030, 12, 31, 23, 59, 59, 1), utc(2031, 1, 1, 0, 0, 0)),
    ],
)
def test_ceil_to_second_rounds_up_never_down(moment, expected):
    assert ceil_to_second(moment) == expected
    assert ceil_to_second(moment) >= moment


def test_ceil_to_second_returns_utc():
    moment = datetime(2030, 5, 19, 19, 56, 0, 250_000, tzinfo=timezone(timedelta(hours=2)))
    result = ceil_to_second(moment)
    assert result == utc(2030, 5, 19, 17, 56, 1)
    assert result.utcoffset() == timedelta(0)
    assert format_utc(result) == "2030-05-19T17:56:01Z"


def test_ceil_to_second_refuses_naive_times():
    with pytest.raises(ValueError, match="naive"):
        ceil_to_second(datetime(2030, 5, 19, 17, 56, 0, 5))
