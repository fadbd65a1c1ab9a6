"""Invocations in worker processes, as Lambda runs containers side by side: the main process keeps
moto's state, the clocks, the pollers and the HTTP front; N workers (local.worker_process) run
the handlers, so their work (botocore, Powertools, JSON, webhooks) spreads over the cores instead
of queueing for one interpreter lock. A worker's AWS calls come back here over a local socket and
are served by moto in this process (local.aws_dispatch), so every worker sees the same state.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import selectors
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from local.aws_dispatch import Dispatch
from local.worker_process import FunctionsSpec, WorkerAddresses, run

log = logging.getLogger("local.workers")
READY_TIMEOUT_SECONDS = 120


class FunctionError(Exception):
    """A function's error, as Lambda reports it: the error's type and message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type


class _Worker:
    def __init__(self, process: Any, address: str) -> None:
        self.process = process
        self.address = address
        self.idle: list[Connection] = []
        self.in_flight = 0


class WorkerPool:
    def __init__(self, count: int, spec: FunctionsSpec, dispatch: Dispatch) -> None:
        self._count = count
        self._spec = spec
        self._dispatch = dispatch
        self._dir = tempfile.TemporaryDirectory(prefix="local-workers-")
        # The sockets live in a directory only this user can enter (mkdtemp makes it 0700), which
        # is the guard: multiprocessing's authkey would add a challenge to every connection
        # (~0.3 ms of CPU each, hundreds of them as a burst opens connections) and guard against
        # nobody the directory does not already keep out.
        self._listener = Listener(self._path("main"), family="AF_UNIX")
        self._workers: list[_Worker] = []
        self._lifelines: list[Connection] = []
        self._ready = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._stopped = False
        self._order = itertools.count()
        self._aws = _AwsServer(dispatch)

    @property
    def socket_directory(self) -> str:
        return self._dir.name

    def _path(self, name: str) -> str:
        return str(Path(self._dir.name) / name)

    def start(self) -> None:
        threading.Thread(target=self._accept, name="workers-accept", daemon=True).start()
        threading.Thread(target=self._aws.run, name="workers-aws", daemon=True).start()
        context = multiprocessing.get_context("spawn")  # a fresh interpreter, as a container
        for index in range(self._count):
            address = self._path(f"worker-{index}")
            process = context.Process(
                target=run,
                args=(self._spec, WorkerAddresses(self._path("main"), address)),
                name=f"local-worker-{index}",
                daemon=True,
            )
            process.start()
            self._workers.append(_Worker(process, address))
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        for _ in range(self._count):
            if not self._ready.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise OSError("local mode's worker processes did not start; see the log")

    def stop(self) -> None:
        self._stopped = True
        self._aws.stop()
        for lifeline in self._lifelines:
            lifeline.close()  # each worker exits when its lifeline closes
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.terminate()
        self._listener.close()
        self._dir.cleanup()

    @property
    def pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers]

    def handler(self, logical_id: str) -> Callable[[Any, Any], Any]:
        """The function's handler as the main process calls it: run in the least busy worker."""

        def invoke(event: Any, context: Any) -> Any:
            request = (
                logical_id,
                json.dumps(event),
                context.aws_request_id,
                context.get_remaining_time_in_millis(),
            )
            outcome, first, second = self._call(request)
            if outcome != "ok":
                raise FunctionError(first, second)
            return json.loads(first)

        return invoke

    def _call(self, request: tuple[Any, ...]) -> tuple[str, str, str]:
        with self._lock:
            # A worker that died (as a container can) gets no more invocations.
            alive = [each for each in self._workers if each.process.is_alive()]
            if not alive:
                raise FunctionError("WorkerGone", "every worker process has ended; see the log")
            start = next(self._order) % len(alive)
            worker = min(alive[start:] + alive[:start], key=lambda each: each.in_flight)
            worker.in_flight += 1
            connection = worker.idle.pop() if worker.idle else None
        try:
            if connection is None:
                connection = Client(worker.address, family="AF_UNIX")
            connection.send(request)
            reply = connection.recv()
        except (EOFError, OSError) as error:
            raise FunctionError("WorkerGone", f"the worker process ended: {error}") from error
        finally:
            with self._lock:
                worker.in_flight -= 1
        with self._lock:
            worker.idle.append(connection)
        return reply

    # -- the workers' connections -----------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped:
            try:
                connection = self._listener.accept()
            except OSError:  # closed by stop()
                return
            threading.Thread(
                target=self._greet, args=(connection,), name="worker-conn", daemon=True
            ).start()

    def _greet(self, connection: Connection) -> None:
        try:
            kind, pid = connection.recv()
        except (EOFError, OSError):
            return
        if kind == "ready":
            self._lifelines.append(connection)
            log.debug("worker %s ready", pid)
            self._ready.release()
        else:
            self._aws.add(connection)


class _AwsServer:
    """Every worker thread's AWS calls, answered by moto here on one thread, one after another.

    moto's state is behind one interpreter lock (and DynamoDB's behind one more) anyway: a thread
    per connection only added thread switches and lock hand-offs to each call. None of the
    functions' calls waits (no long poll), so one call never holds up the others for long.

    The connections (one per worker thread that has called AWS, hundreds in a burst) stay
    registered with one selector: `multiprocessing.connection.wait` registers every one of them
    again on each call, ~1 µs each, a quarter of a millisecond per call served at 256."""

    def __init__(self, dispatch: Dispatch) -> None:
        self._dispatch = dispatch
        self._selector = selectors.DefaultSelector()
        self._added: list[Connection] = []
        self._lock = threading.Lock()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._stopped = False

    def add(self, connection: Connection) -> None:
        with self._lock:
            self._added.append(connection)
        self._wake()

    def stop(self) -> None:
        self._stopped = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already stopped: nothing is waiting
            self._wake_writer.send(b"\0")

    def run(self) -> None:
        while not self._stopped:
            for key, _ in self._selector.select():
                ready = key.fileobj
                if ready is self._wake_reader:
                    self._wake_reader.recv(4096)
                    with self._lock:
                        added, self._added = self._added, []
                    for connection in added:
                        self._selector.register(connection, selectors.EVENT_READ)
                elif not self._serve(ready):  # type: ignore[arg-type]
                    self._selector.unregister(ready)
                    ready.close()  # type: ignore[union-attr]
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def _serve(self, connection: Connection) -> bool:
        """Answers the call waiting on `connection`; False once the worker thread is gone."""
        try:
            service, method, url, headers, body = connection.recv()
        except (EOFError, OSError):
            return False
        try:
            reply = self._dispatch(service, method, url, headers, body)
        except Exception as error:
            log.exception("moto failed on a worker's %s call", service)
            reply = (500, {"Content-Type": "application/json"}, _error_body(error))
        try:
            connection.send(reply)
        except OSError:
            return False
        return True


def _error_body(error: Exception) -> bytes:
    return json.dumps({"__type": "InternalFailure", "message": str(error)}).encode()


def default_count() -> int:
    return os.cpu_count() or 1
