"""`make local` as a user meets it: a subprocess serving the API on 127.0.0.1, firing on time."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from task_scheduler.timing import format_utc, parse_stored_utc
from tests.support import local_process
from tests.support.lambda_runtime import ROOT
from tests.support.local_process import LocalProcess, local_mode, port_is_free
from tests.support.receiver import Receiver, running_receiver

DATE_EXPRESSION = '\'"$(date -u -d "+1 minute" +%Y-%m-%dT%H:%M:00Z)"\''


def _ready_curl_body(local: LocalProcess, run_at: str) -> dict:
    """The body of the curl the ready text prints, with its `date` substitution done."""
    text = "".join(local.stdout_lines)
    match = re.search(r"-d '(\{.*\})'\n", text)
    assert match, text
    return json.loads(match.group(1).replace(DATE_EXPRESSION, run_at))


def _headers(local: LocalProcess) -> dict[str, str]:
    return {"x-api-key": local.api_key, "Content-Type": "application/json"}


def _wait_for_status(local: LocalProcess, task_id: str, status: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    task: dict = {}
    while time.monotonic() < deadline:
        task = requests.get(
            f"{local.url}/tasks/{task_id}", headers=_headers(local), timeout=5
        ).json()
        if task.get("status") == status:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task never became {status}: {task}")


def _coming_minute() -> datetime:
    """The next whole minute, as the ready text's curl computes it, at least 5 s away."""
    start = (datetime.now(UTC) + timedelta(seconds=5)).replace(second=0, microsecond=0)
    return start + timedelta(minutes=1)


def _deliver_once_on_time(local: LocalProcess, receiver: Receiver, run_at: datetime) -> None:
    body = _ready_curl_body(local, format_utc(run_at))
    body["payload"]["url"] = f"{receiver.url}/hooks/local"
    response = requests.post(
        f"{local.url}/schedule-task", json=body, headers=_headers(local), timeout=10
    )
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["run_at"] == format_utc(run_at)

    got = receiver.wait_for(1, timeout=(run_at - datetime.now(UTC)).total_seconds() + 20)
    assert len(got) == 1, local.output[-3000:]
    # Never early; on time (the contract's second is measured by bench/local_precision.py: a
    # loaded test machine gets a looser bound, still far inside the minute a rule fires in).
    assert run_at <= got[0].received_at < run_at + timedelta(seconds=5)
    assert json.loads(got[0].body) == {"msg": "Hello from local mode"}
    task = _wait_for_status(local, answer["task_id"], "completed", timeout=10)
    assert parse_stored_utc(task["attempts"][0]["started_at"]) >= run_at
    time.sleep(1)  # a second delivery would have arrived by now
    assert len(receiver.requests) == 1


def test_ready_text_and_api_key(tmp_path: object) -> None:
    with local_mode() as local:
        ready = local.wait_ready()
        assert local.url in ready
        assert local.api_key in ready
        assert "curl" in "".join(local.stdout_lines)

        no_key = requests.get(f"{local.url}/tasks/{'0' * 8}", timeout=5)
        assert no_key.status_code == 403
        assert no_key.json() == {"message": "Forbidden"}
        wrong = requests.post(
            f"{local.url}/schedule-task", json={}, headers={"x-api-key": "nope"}, timeout=5
        )
        assert wrong.status_code == 403

        too_large = requests.post(
            f"{local.url}/schedule-task",
            data=b"x" * 300_000,
            headers=_headers(local),
            timeout=10,
        )
        assert too_large.status_code == 413
        assert too_large.json()["message"]

        unknown = requests.get(f"{local.url}/nowhere", headers=_headers(local), timeout=5)
        assert unknown.status_code == 404
        assert unknown.json()["message"]


@pytest.mark.slow  # waits for real time: started first (tests/conftest.py)
def test_readme_quick_start_is_delivered_once_on_time() -> None:
    with running_receiver() as receiver, local_mode() as local:
        _deliver_once_on_time(local, receiver, _coming_minute())


def test_aws_timing_delivers_a_task_at_an_odd_second_once_never_early() -> None:
    with running_receiver() as receiver, local_mode(LOCAL_AWS_TIMING="1") as local:
        run_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=13)
        _deliver_once_on_time(local, receiver, run_at)


def test_inbox_records_deliveries() -> None:
    with local_mode() as local:
        run_at = parse_stored_utc(format_utc(datetime.now(UTC) + timedelta(seconds=2)))
        body = _ready_curl_body(local, format_utc(run_at))
        response = requests.post(
            f"{local.url}/schedule-task", json=body, headers=_headers(local), timeout=10
        )
        assert response.status_code == 201
        deadline = time.monotonic() + 30
        deliveries: list = []
        while time.monotonic() < deadline and not deliveries:
            deliveries = requests.get(
                f"{local.url}/_local/inbox", headers=_headers(local), timeout=5
            ).json()["deliveries"]
            time.sleep(0.2)
        (delivery,) = deliveries
        assert delivery["path"] == "/_local/inbox/hello"
        assert json.loads(delivery["body"]) == {"msg": "Hello from local mode"}
        assert datetime.fromisoformat(delivery["received_at"]) >= run_at


def test_stops_cleanly_on_ctrl_c() -> None:
    with local_mode() as local:
        port = local.port
        assert not port_is_free(port)
        # The handlers run in worker processes (LOCAL_WORKERS, one per core by default).
        pid = local.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert children
        code = local.stop()
    assert code == 0
    assert local.process.poll() == 0
    assert port_is_free(port)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(child) for child in children):
        time.sleep(0.1)
    assert not any(_alive(child) for child in children), "a worker outlived local mode"


def _alive(pid: str) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_readme_shows_the_same_quick_start_curl() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    from local.__main__ import ready_text

    for line in ready_text("http://127.0.0.1:3000", "local-dev-key").splitlines():
        if line.strip().startswith("curl"):
            assert line.strip() in readme


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests must talk to 127.0.0.1 directly, whatever proxy the machine has configured.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_local_mode_signs_and_retries_through_its_queue() -> None:
    from standardwebhooks.webhooks import Webhook

    from tests.support.receiver import Answer

    secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
    with running_receiver() as receiver, local_mode(WEBHOOK_SIGNING_SECRET=secret) as local:
        assert secret in "".join(local.stdout_lines)
        receiver.answers = [Answer(status=503), Answer(status=200)]
        run_at = parse_stored_utc(format_utc(datetime.now(UTC) + timedelta(seconds=2)))
        body = {
            "action": "webhook",
            "payload": {"url": f"{receiver.url}/hooks/retry", "data": {"n": 1}},
            "run_at": format_utc(run_at),
        }
        response = requests.post(
            f"{local.url}/schedule-task", json=body, headers=_headers(local), timeout=10
        )
        assert response.status_code == 201, response.text
        task = _wait_for_status(local, response.json()["task_id"], "completed", timeout=60)

        first, second = receiver.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"]
        for delivery in (first, second):
            assert Webhook(secret).verify(delivery.body, delivery.headers) == {"n": 1}
        assert [a["status_code"] for a in task["attempts"]] == [503, 200]
        assert first.received_at >= run_at


def test_local_mode_emulates_the_rules_quota_of_the_default_bus() -> None:
    # The quota counts every rule of the default bus: the reconciler's own schedule takes one.
    with local_mode(LOCAL_RULES_QUOTA="2") as local:
        body = {"action": "webhook", "payload": {"url": "http://127.0.0.1:9/hook"}}

        def schedule(seconds: int) -> requests.Response:
            run_at = format_utc(datetime.now(UTC) + timedelta(seconds=seconds))
            return requests.post(
                f"{local.url}/schedule-task",
                json={**body, "run_at": run_at},
                headers=_headers(local),
                timeout=10,
            )

        first = schedule(3600)
        assert first.status_code == 201, first.text
        refused = schedule(7200)
        assert refused.status_code == 503
        assert "quota of rules per event bus" in refused.json()["message"]
        still_there = requests.get(
            f"{local.url}/tasks/{first.json()['task_id']}", headers=_headers(local), timeout=5
        )
        assert still_there.json()["status"] == "scheduled"


def test_local_mode_serves_cancel() -> None:
    with local_mode() as local:
        body = {
            "action": "webhook",
            "payload": {"url": "http://127.0.0.1:9/hook"},
            "run_at": format_utc(datetime.now(UTC) + timedelta(hours=1)),
        }
        scheduled = requests.post(
            f"{local.url}/schedule-task", json=body, headers=_headers(local), timeout=10
        )
        assert scheduled.status_code == 201, scheduled.text
        task_id = scheduled.json()["task_id"]
        tasks = f"{local.url}/tasks/{task_id}"

        assert requests.delete(tasks, timeout=5).status_code == 403
        for _ in range(2):  # repeating answers the same
            cancelled = requests.delete(tasks, headers=_headers(local), timeout=10)
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json() == {"task_id": task_id, "status": "cancelled"}
        assert requests.get(tasks, headers=_headers(local), timeout=5).json()["status"] == (
            "cancelled"
        )


def test_a_busy_port_is_named_with_the_way_out() -> None:
    from local.__main__ import EXIT_PORT_IN_USE

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        done = subprocess.run(
            [sys.executable, "-m", "local"],
            cwd=ROOT,
            env={**env, "PORT": str(port), "LOCAL_WORKERS": "0"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == EXIT_PORT_IN_USE
    assert f"port {port} is in use" in done.stderr
    assert "set PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_harness_starts_local_mode_again_when_its_port_was_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Tests running side by side pick free ports too: one can take ours before local mode binds.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        ports = iter([taken, local_process.free_port()])
        monkeypatch.setattr(local_process, "free_port", lambda: next(ports))
        with local_mode(LOCAL_WORKERS="0") as local:
            assert local.port != taken
            answer = requests.get(f"{local.url}/tasks", headers=_headers(local), timeout=10)
            assert answer.status_code == 200
