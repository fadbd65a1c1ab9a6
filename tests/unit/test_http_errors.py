"""Unit tests for task_scheduler.http_errors: domain errors to statuses and bodies (section 2)."""

import json

import pytest

from task_scheduler.errors import (
    MAX_QUOTED_CHARS,
    DependencyFailure,
    FieldProblem,
    InvalidRequest,
    PayloadTooLarge,
    SchedulerError,
    TaskConflict,
    TaskNotFound,
    UnsupportedMediaType,
    quote,
)
from task_scheduler.http_errors import MAX_LISTED_PROBLEMS, error_body, status_for


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidRequest([FieldProblem("run_at", "must be in the future")]), 400),
        (TaskNotFound("123e4567-e89b-42d3-a456-426614174000"), 404),
        (TaskConflict("The task is running."), 409),
        (PayloadTooLarge("Too large."), 413),
        (UnsupportedMediaType("Not JSON."), 415),
        (DependencyFailure("DynamoDB was unreachable."), 503),
    ],
)
def test_each_domain_error_has_its_status(error, status):
    assert status_for(error) == status


def test_an_unclassified_scheduler_error_is_a_500():
    assert status_for(SchedulerError("unexpected")) == 500


def test_a_subclass_keeps_its_parents_status():
    class Throttled(DependencyFailure):
        pass

    assert status_for(Throttled("slow down")) == 503


def test_invalid_request_body_lists_every_problem():
    error = InvalidRequest(
        [
            FieldProblem("payload.url", "is required"),
            FieldProblem("run_at", "must be in the future"),
        ]
    )
    assert error_body(error) == {
        "message": "Invalid request: 2 fields are invalid.",
        "errors": [
            {"field": "payload.url", "problem": "is required"},
            {"field": "run_at", "problem": "must be in the future"},
        ],
    }


def test_invalid_request_with_one_problem_says_it_in_the_message():
    error = InvalidRequest([FieldProblem("run_at", "must be in the future")])
    assert error_body(error) == {
        "message": "Invalid request: run_at must be in the future.",
        "errors": [{"field": "run_at", "problem": "must be in the future"}],
    }


def test_invalid_request_with_an_explicit_message():
    error = InvalidRequest(
        [FieldProblem("body", "is not valid JSON")], message="The request body is not valid JSON."
    )
    assert error_body(error) == {
        "message": "The request body is not valid JSON.",
        "errors": [{"field": "body", "problem": "is not valid JSON"}],
    }


def test_invalid_request_without_problems_has_no_errors_list():
    assert error_body(InvalidRequest([])) == {"message": "Invalid request."}


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            TaskNotFound("123e4567-e89b-42d3-a456-426614174000"),
            "Task 123e4567-e89b-42d3-a456-426614174000 was not found.",
        ),
        (TaskConflict("The task is running."), "The task is running."),
        (PayloadTooLarge("Too large."), "Too large."),
        (UnsupportedMediaType("Not JSON."), "Not JSON."),
        (DependencyFailure("DynamoDB was unreachable."), "DynamoDB was unreachable."),
    ],
)
def test_other_errors_have_only_a_message(error, message):
    assert error_body(error) == {"message": message}


def test_bodies_are_json_serialisable():
    error = InvalidRequest([FieldProblem("payload.headers.Host", "is set by the scheduler")])
    assert json.loads(json.dumps(error_body(error))) == error_body(error)


def test_task_not_found_keeps_the_id():
    assert TaskNotFound("abc").task_id == "abc"


# --- quoting client input (contract section 2: at most 200 characters of it) -------------------


def test_short_input_is_quoted_whole():
    assert MAX_QUOTED_CHARS == 200
    assert quote("x" * 200) == "x" * 200
    assert quote("") == ""


def test_long_input_is_cut_to_200_characters_and_marked():
    assert quote("y" * 201) == "y" * 200 + "..."
    assert quote("y" * 300_000) == "y" * 200 + "..."


def test_lone_surrogates_are_quoted_as_escapes_so_the_answer_stays_text():
    quoted = quote("a\ud800b")
    assert quoted == "a\\ud800b"
    quoted.encode("utf-8")  # no UnicodeEncodeError


def test_task_not_found_quotes_at_most_200_characters_of_the_id():
    error = TaskNotFound("t" * 100_000)
    assert error.message == f"Task {'t' * 200}... was not found."
    assert error.task_id == "t" * 100_000


def test_error_body_lists_a_bounded_number_of_problems_and_counts_them_all():
    problems = [FieldProblem(f"k{n}", "is not a known field") for n in range(10_000)]
    body = error_body(InvalidRequest(problems))
    assert body["message"] == "Invalid request: 10000 fields are invalid."
    assert body["errors"] == [
        {"field": f"k{n}", "problem": "is not a known field"} for n in range(MAX_LISTED_PROBLEMS)
    ]


def test_error_body_bounds_every_text_even_one_built_without_quote():
    # A last guard for the answer and the rejection log: a message or problem that quoted
    # client input whole is cut too.
    error = InvalidRequest(
        [FieldProblem("f" * 100_000, "is " + "p" * 100_000)], message="m" * 100_000
    )
    body = error_body(error)
    assert len(json.dumps(body)) < 4096
    assert body["errors"][0]["field"].startswith("f" * 200)
