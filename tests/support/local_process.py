"""Starting `python -m local` (what `make local` runs) as a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PORT_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def refusing_endpoint() -> Iterator[str]:
    """An http endpoint on 127.0.0.1 that refuses every connection while the block runs: its port
    is held (bound, never listening), so nothing else can take it meanwhile."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{holder.getsockname()[1]}"


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class LocalProcess:
    process: subprocess.Popen
    port: int
    api_key: str
    stdout_lines: list[str] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "".join(self.stdout_lines) + "".join(self.stderr_lines)

    def wait_ready(self, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.stdout_lines):
                if "ready at" in line:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"local mode did not get ready:\n{self.output[-5000:]}")

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise AssertionError(
                f"local mode did not stop on SIGINT:\n{self.output[-3000:]}"
            ) from None


def _pump(stream, sink: list[str]) -> None:
    for line in iter(stream.readline, ""):
        sink.append(line)
    stream.close()


@contextmanager
def local_mode(**env: str) -> Iterator[LocalProcess]:
    """Local mode on a free port, ready. A port found free can be taken before local mode binds
    it (tests run side by side pick ports too): local mode then exits with EXIT_PORT_IN_USE and
    is started again on another."""
    for attempt in range(1, PORT_ATTEMPTS + 1):
        with _local_mode_on(free_port(), dict(env), last=attempt == PORT_ATTEMPTS) as running:
            if running is not None:
                yield running
                return


@contextmanager
def _local_mode_on(port: int, env: dict[str, str], last: bool) -> Iterator[LocalProcess | None]:
    """Local mode on `port`, ready; None if the port was taken meanwhile (unless `last`)."""
    from local.__main__ import EXIT_PORT_IN_USE

    api_key = env.pop("API_KEY", "test-key-123")
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "PYTHONPATH"
    }
    child_env.update({"PORT": str(port), "API_KEY": api_key, **env})
    process = subprocess.Popen(
        [sys.executable, "-m", "local"],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = LocalProcess(process, port, api_key)
    for stream, sink in (
        (process.stdout, running.stdout_lines),
        (process.stderr, running.stderr_lines),
    ):
        threading.Thread(target=_pump, args=(stream, sink), daemon=True).start()
    try:
        try:
            running.wait_ready()
        except AssertionError:
            if not last and process.poll() == EXIT_PORT_IN_USE:
                yield None
                return
            raise
        yield running
    finally:
        if process.poll() is None:
            running.stop()
