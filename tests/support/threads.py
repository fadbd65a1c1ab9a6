"""Threads run side by side with the interpreter lock handed around as often as it can be, so a
race that needs a thread switch at one exact point gets every chance to happen."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def run_with_frequent_switches(targets: list[Callable[[], None]], timeout: float) -> None:
    """Runs each target on its own thread and waits for all (each join up to `timeout`)."""
    switching = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=target) for target in targets]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=timeout)
    finally:
        sys.setswitchinterval(switching)
