"""`timezone` from request to answer (contract sections 1 and 3): the field's checks, the zoned
first occurrence the scheduler arms, what is stored, and what POST and GET answer.
"""

import json
from datetime import UTC, datetime

import pytest

from task_scheduler.actions import validators
from task_scheduler.errors import InvalidRequest
from task_scheduler.responses import scheduled_answer, task_view
from task_scheduler.schedule_request import ScheduleRequest, parse_schedule_body
from task_scheduler.scheduling import Scheduler
from task_scheduler.task_items import from_item, largest_stored_size, to_item
from task_scheduler.timing import parse_run_at
from tests.support.fakes import FakeClock, FakeFarTrigger, FakeStore, fake_arming

pytestmark = pytest.mark.usefixtures("no_dns")

NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
TASK_ID = "123e4567-e89b-42d3-a456-426614174000"
PAYLOAD = {"url": "https://example.com/hooks/report"}


def registry():
    return validators(allow_loopback=False, resolver=lambda host, port: ["93.184.215.14"])


def body(**fields):
    return json.dumps({"action": "webhook", "payload": PAYLOAD, **fields}).encode()


def command(**fields):
    return parse_schedule_body(body(**fields), "application/json").to_command(registry(), NOW)


def problems(**fields):
    with pytest.raises(InvalidRequest) as caught:
        command(**fields)
    return [(p.field, p.problem) for p in caught.value.problems]


def schedule(**fields):
    store, triggers = FakeStore(), FakeFarTrigger()
    scheduler = Scheduler(
        store, fake_arming(triggers), FakeClock(NOW, can_sleep=False), new_id=lambda: TASK_ID
    )
    return scheduler.schedule(command(**fields)), store, triggers


# --- the request ------------------------------------------------------------------------------


def test_cron_is_read_in_the_zone_given():
    # 09:00 in Paris on 2027-03-11 is 08:00 UTC (CET, +01:00); after 2027-03-28, 07:00 UTC.
    parsed = command(run_at="cron(0 9 * * ? *)", timezone="Europe/Paris")
    assert parsed.schedule.first_run_at == datetime(2027, 3, 11, 8, 0, tzinfo=UTC)
    assert parsed.schedule.timezone == "Europe/Paris"
    assert parsed.schedule.cron.next_after(datetime(2027, 3, 29, tzinfo=UTC)) == datetime(
        2027, 3, 29, 7, 0, tzinfo=UTC
    )


def test_without_a_zone_a_cron_is_read_in_utc():
    parsed = command(run_at="cron(0 9 * * ? *)")
    assert parsed.schedule.timezone == "UTC"
    assert parsed.schedule.first_run_at == datetime(2027, 3, 11, 9, 0, tzinfo=UTC)
    assert command(run_at="cron(0 9 * * ? *)", timezone=None).schedule.timezone == "UTC"


def test_an_iso_run_at_has_no_zone_of_its_own():
    assert command(run_at="2027-03-11T09:00:00+01:00").schedule.timezone == "UTC"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "europe/paris", "", "../../etc/passwd"])
def test_unknown_zone_is_a_problem_naming_timezone(zone):
    [(field, problem)] = problems(run_at="cron(0 9 * * ? *)", timezone=zone)
    assert field == "timezone"
    assert problem.startswith(f"'{zone}' is not an IANA time zone name")
    assert "Europe/Paris" in problem


@pytest.mark.parametrize("zone", [1, True, ["Europe/Paris"], {"name": "Europe/Paris"}])
def test_zone_that_is_not_a_string_is_a_problem_naming_timezone(zone):
    assert problems(run_at="cron(0 9 * * ? *)", timezone=zone) == [
        ("timezone", 'must be a string: an IANA time zone name like "Europe/Paris"')
    ]


def test_long_unknown_zone_is_quoted_at_most_200_characters():
    [(_, problem)] = problems(run_at="cron(0 9 * * ? *)", timezone="z" * 100_000)
    assert "z" * 200 + "..." in problem
    assert "z" * 201 not in problem


@pytest.mark.parametrize("zone", ["Europe/Paris", "UTC"])
def test_zone_with_an_iso_run_at_is_a_problem_naming_timezone(zone):
    assert problems(run_at="2027-03-11T09:00:00+01:00", timezone=zone) == [
        (
            "timezone",
            "applies only to a cron(...) run_at: an ISO 8601 time has its own offset",
        )
    ]


def test_zone_with_a_bad_iso_run_at_names_both():
    found = problems(run_at="2027-03-11T09:00:00", timezone="Europe/Paris")
    assert [field for field, _ in found] == ["run_at", "timezone"]


def test_zone_problems_come_with_the_other_problems():
    found = problems(run_at="cron(0 9 * * ? *)", timezone="Nowhere", retry={"max_attempts": 0})
    assert [field for field, _ in found] == ["timezone", "retry.max_attempts"]


def test_cron_with_no_future_occurrence_in_its_zone_is_refused():
    # 02:30 on 2027-03-14 never happens in New York (clocks go from 02:00 to 03:00).
    assert problems(run_at="cron(30 2 14 3 ? 2027)", timezone="America/New_York") == [
        ("run_at", "is a cron expression with no future occurrence")
    ]


def test_parse_run_at_without_a_zone_still_reads_utc():
    parsed = parse_run_at("cron(0 9 * * ? *)", NOW)
    assert parsed.first_run_at == datetime(2027, 3, 11, 9, 0, tzinfo=UTC)


def test_the_request_keeps_the_zone_as_sent():
    request = parse_schedule_body(body(run_at="cron(0 9 * * ? *)", timezone="Asia/Kolkata"), None)
    assert request == ScheduleRequest(
        "webhook", PAYLOAD, "cron(0 9 * * ? *)", None, timezone="Asia/Kolkata"
    )


# --- scheduling, storage and answers ----------------------------------------------------------


def test_zoned_recurring_task_is_armed_for_its_zoned_first_occurrence():
    task, store, triggers = schedule(run_at="cron(30 2 * * ? *)", timezone="America/New_York")
    first = datetime(2027, 3, 11, 7, 30, tzinfo=UTC)  # 02:30 EST tomorrow (now is 07:00 EST)
    assert triggers.armed[TASK_ID] == first
    assert task.timezone == "America/New_York"
    assert task.next_run_at == "2027-03-11T07:30:00Z"
    assert store.tasks[TASK_ID].timezone == "America/New_York"


def test_utc_recurring_task_is_armed_for_its_utc_first_occurrence():
    task, _, triggers = schedule(run_at="cron(0 9 * * ? *)")
    assert triggers.armed[TASK_ID] == datetime(2027, 3, 11, 9, 0, tzinfo=UTC)
    assert task.timezone == "UTC"


def test_zoned_single_moment_cron_is_a_one_shot_at_its_utc_instant():
    task, _, triggers = schedule(run_at="cron(30 1 7 11 ? 2027)", timezone="America/New_York")
    assert task.recurring is False
    assert triggers.armed[TASK_ID] == datetime(2027, 11, 7, 5, 30, tzinfo=UTC)


def test_scheduled_answer_and_view_of_a_cron_task_name_its_zone_and_next_run():
    task, _, _ = schedule(run_at="cron(0 9 * * ? *)", timezone="Europe/Paris")
    answer = scheduled_answer(task)
    assert answer["timezone"] == "Europe/Paris"
    assert answer["next_run_at"] == "2027-03-11T08:00:00Z"
    assert list(answer)[:4] == ["message", "task_id", "status", "run_at"]
    view = task_view(task)
    assert view["timezone"] == "Europe/Paris"
    assert view["next_run_at"] == "2027-03-11T08:00:00Z"


def test_utc_cron_answers_name_utc():
    task, _, _ = schedule(run_at="cron(0 9 * * ? *)")
    assert scheduled_answer(task)["timezone"] == "UTC"
    assert task_view(task)["timezone"] == "UTC"


def test_one_shot_answers_have_no_zone():
    task, _, _ = schedule(run_at="2027-03-11T09:00:00Z")
    assert "timezone" not in scheduled_answer(task)
    assert "timezone" not in task_view(task)


def test_the_zone_is_stored_and_read_back():
    task, _, _ = schedule(run_at="cron(0 9 * * ? *)", timezone="Australia/Adelaide")
    item = to_item(task)
    assert item["timezone"] == {"S": "Australia/Adelaide"}
    assert from_item(item).timezone == "Australia/Adelaide"


def test_a_cron_task_stored_before_zones_existed_is_utc():
    task, _, _ = schedule(run_at="cron(0 9 * * ? *)")
    item = to_item(task)
    del item["timezone"]
    assert from_item(item).timezone == "UTC"


def test_a_one_shot_task_stores_no_zone():
    task, _, _ = schedule(run_at="2027-03-11T09:00:00Z")
    assert "timezone" not in to_item(task)


def test_the_stored_size_counts_the_zone():
    utc_task, _, _ = schedule(run_at="cron(0 9 * * ? *)")
    zoned_task, _, _ = schedule(
        run_at="cron(0 9 * * ? *)", timezone="America/Argentina/ComodRivadavia"
    )
    extra = len("America/Argentina/ComodRivadavia") - len("UTC")
    assert largest_stored_size(zoned_task) == largest_stored_size(utc_task) + extra
