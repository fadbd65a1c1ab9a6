"""The deadline of one webhook attempt: `timeout_seconds` bounds resolving, connecting, sending,
waiting for the answer and reading it, together (contract section 5)."""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress


class AttemptDeadline:
    """When one attempt must be over: `seconds` after it is created (contract section 5).

    A blocking socket call takes a timeout per call, not one for a whole exchange, and a receiver
    that answers one byte at a time never lets a per-call timeout expire. So when the deadline
    passes, every socket handed to `watch` is shut down, which ends whatever call is waiting on
    it at once; `remaining` bounds each call besides (connecting, before there is a socket).
    Use it as a context manager: the deadline is watched inside the `with`.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._cut_off = False
        self._watch: _Watched | None = None

    def __enter__(self) -> AttemptDeadline:
        self._watch = _DEADLINES.add(self.started + self.seconds, self._cut)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._watch is not None:
            self._watch.cancelled = True
        with self._lock:
            for watched in self._watched:
                watched.close()
            self._watched.clear()

    def remaining(self) -> float:
        return max(0.0, self.started + self.seconds - time.monotonic())

    @property
    def cut_off(self) -> bool:
        """True once the sockets were shut down: what came through them may be truncated."""
        return self._cut_off

    def watch(self, sock: socket.socket) -> None:
        # A duplicate of the socket's file descriptor: TLS takes over (detaches) the original,
        # and shutting down either one shuts down the connection they share.
        watched = sock.dup()
        with self._lock:
            self._watched.append(watched)
            if self._cut_off:
                _shut_down(watched)

    def _cut(self) -> None:
        with self._lock:
            self._cut_off = True
            for watched in self._watched:
                _shut_down(watched)


def _shut_down(sock: socket.socket) -> None:
    with suppress(OSError):  # not connected (any more): nothing can be waiting on it
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    __slots__ = ("cancelled", "cut")

    def __init__(self, cut: Callable[[], None]) -> None:
        self.cut = cut
        self.cancelled = False


class _Deadlines:
    """Every attempt's deadline in this process, watched by one thread: starting a timer thread
    per attempt (and waking it to cancel it) cost more than a tenth of a delivery's CPU. The
    thread starts with the first deadline, and again if it is gone (a forked child has none)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._due: list[tuple[float, int, _Watched]] = []  # a heap, soonest first
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, when: float, cut: Callable[[], None]) -> _Watched:
        watched = _Watched(cut)
        with self._changed:
            heapq.heappush(self._due, (when, next(self._order), watched))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="attempt-deadlines", daemon=True
                )
                self._thread.start()
            elif self._due[0][2] is watched:  # sooner than what the thread waits for
                self._changed.notify()
        return watched

    def _run(self) -> None:
        while True:
            with self._changed:
                while True:
                    while self._due and self._due[0][2].cancelled:
                        heapq.heappop(self._due)  # ended in time: forgotten
                    if not self._due:
                        self._changed.wait()
                        continue
                    wait = self._due[0][0] - time.monotonic()
                    if wait <= 0:
                        watched = heapq.heappop(self._due)[2]
                        break
                    self._changed.wait(wait)
            watched.cut()  # outside the lock: it takes the attempt's own


_DEADLINES = _Deadlines()
