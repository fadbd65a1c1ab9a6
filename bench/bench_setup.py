"""What the bench scripts do before importing the project: put this checkout's code (the repo
and the Lambda layer's `task_scheduler`) first on the path, and, for those running the code under
moto, fake AWS credentials with no endpoint, so no call can reach a real account."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_this_checkout() -> None:
    for index, path in enumerate((ROOT, ROOT / "scheduler_layer")):
        if str(path) not in sys.path:
            sys.path.insert(index, str(path))


def use_fake_aws(region: str = "us-east-1", **more: str) -> None:
    """Bench credentials in `region`, no AWS_ENDPOINT_URL, and `more` variables besides."""
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": region,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            **more,
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
