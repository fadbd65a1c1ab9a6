"""`sam build` with the runtime's interpreter, then the built artifact invoked end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.packaging


def test_runtime_matches_the_interpreter_that_built_it() -> None:
    assert sys.version_info[:2] == (3, 13)


def test_build_contains_both_functions_and_the_layer(build_dir: Path) -> None:
    assert (build_dir / "ScheduleTaskFunction" / "app.py").is_file()
    assert (build_dir / "ExecuteTaskFunction" / "app.py").is_file()
    layer = build_dir / "SchedulerLayer" / "python"
    for package in ("task_scheduler", "aws_lambda_powertools", "requests", "dateutil"):
        assert (layer / package).is_dir(), package
    # Shared code lives once, in the layer, never copied into the function folders.
    assert not (build_dir / "ScheduleTaskFunction" / "task_scheduler").exists()
    assert not (build_dir / "ExecuteTaskFunction" / "task_scheduler").exists()


@pytest.mark.slow
def test_built_artifact_runs_end_to_end_under_moto(build_dir: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "packaging" / "invoke_built.py"),
            str(build_dir),
            str(ROOT),
        ],
        cwd=build_dir,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AWS_PROFILE")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["task_scheduler_file"].startswith(str(build_dir))
    assert all(path.startswith(str(build_dir)) for path in seen["handler_files"])
    assert seen["schedule_status"] == [201, 201]
    task_id = seen["answer"]["task_id"]
    assert seen["answer"]["status"] == "scheduled"
    far = seen["far"]
    assert seen["rule_expression"].startswith("cron(")
    assert json.loads(seen["target_input"]) == {"task_id": far["task_id"], "due": far["run_at"]}
    assert json.loads(seen["message_body"]) == {"task_id": task_id, "due": seen["answer"]["run_at"]}
    assert seen["execute_outcome"] == {"batchItemFailures": []}
    assert len(seen["deliveries"]) == 1
    assert seen["deliveries"][0]["path"] == "/hooks/report"
    assert json.loads(seen["deliveries"][0]["body"]) == {"msg": "Hello from Lambda"}
    assert seen["deliveries"][0]["early"] is False
    assert seen["deliveries"][0]["signed"] is True
    assert seen["task_status"] == "completed"
    assert seen["rules_left"] == [f"built-{far['task_id']}"]  # the far task's, still armed
    assert seen["unknown_status"] == 404
