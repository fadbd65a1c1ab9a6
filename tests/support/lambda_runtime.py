"""Loading a function's handler module the way Lambda does, and a Lambda context for calling it."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from local.functions import import_handler

ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count()


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 120_000


def load_handler_module(code_dir: Path | str) -> ModuleType:
    """Imports `<code_dir>/app.py` as a fresh module, so module-scope clients and settings are
    created now (inside whatever moto mock and environment the caller set up)."""
    return import_handler(Path(code_dir) / "app.py")
