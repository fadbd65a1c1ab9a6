"""The files in events/ (what users pass to `sam local invoke -e`) double as test fixtures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def all_event_files() -> list[str]:
    return sorted(path.name for path in EVENTS_DIR.glob("*.json"))


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway REST proxy event shaped like the ones in events/."""
    event = copy.deepcopy(load_event("schedule_task_iso.json"))
    hdrs = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    hdrs["Content-Type"] = "application/json"
    if headers is not None:
        hdrs.update(headers)
    hdrs = {k: v for k, v in hdrs.items() if v is not None}
    resource = "/tasks/{task_id}" if path.startswith("/tasks/") else path
    event.update(
        httpMethod=method,
        path=path,
        resource=resource,
        headers=hdrs,
        multiValueHeaders={k: [v] for k, v in hdrs.items()},
        body=raw_body if raw_body is not None else (None if body is None else json.dumps(body)),
        isBase64Encoded=False,
        pathParameters={"task_id": path.rsplit("/", 1)[1]} if resource != path else None,
    )
    event["requestContext"].update(httpMethod=method, resourcePath=resource, path=f"/v1{path}")
    return event
