"""Local mode runs a cron read in a time zone as AWS would: one occurrence at a time, computed in
its zone, each armed by the execute function after the one before (occurrences a minute apart
are queued messages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from task_scheduler.timing import parse_stored_utc
from tests.support.local_process import local_mode
from tests.support.receiver import running_receiver


@pytest.mark.slow  # waits for real time: started first (tests/conftest.py)
def test_zoned_cron_runs_at_each_occurrence_armed_in_turn() -> None:
    with running_receiver() as receiver, local_mode() as local:
        headers = {"x-api-key": local.api_key, "Content-Type": "application/json"}
        body = {
            "action": "webhook",
            "payload": {"url": f"{receiver.url}/hooks/zoned"},
            "run_at": "cron(* * * * ? *)",  # every minute, in Kolkata (+05:30)
            "timezone": "Asia/Kolkata",
        }
        response = requests.post(
            f"{local.url}/schedule-task", json=body, headers=headers, timeout=10
        )
        assert response.status_code == 201, response.text
        answer = response.json()
        assert answer["timezone"] == "Asia/Kolkata"
        first = parse_stored_utc(answer["next_run_at"])

        # The first occurrence, then the next one, which only the execute function arms.
        wait = (first - datetime.now(UTC)).total_seconds() + 60 + 20
        got = receiver.wait_for(2, timeout=wait)
        assert len(got) == 2, local.output[-3000:]
        assert first <= got[0].received_at < first + timedelta(seconds=5)
        second = first + timedelta(minutes=1)
        assert second <= got[1].received_at < second + timedelta(seconds=5)
