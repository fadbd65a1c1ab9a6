"""Unit tests for task_scheduler.http_errors: domain errors to statuses and bodies (section 2)."""

import json

import pytest

from task_scheduler.errors import (
    DependencyFailure,
    FieldProblem,
    InvalidRequest,
    PayloadTooLarge,
    SchedulerError,
    TaskConflict,
    TaskNotFound,
    UnsupportedMediaType,
)
from task_scheduler.http_errors import error_body, status_for


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
