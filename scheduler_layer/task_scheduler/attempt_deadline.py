"""The deadline of one webhook attempt: `timeout_seconds` bounds resolving, connecting, sending,
waiting for the answer and reading it, together (contract section 5)."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import suppress


class AttemptDeadline:
    """When one attempt must be over: `seconds` after it is created (contract section 5).

    A blocking socket call takes a timeout per call, not one for a whole exchange, and a receiver
    that answers one byte at a time never lets a per-call timeout expire. So a timer shuts down
    every socket handed to `watch` when the deadline passes, which ends whatever call is waiting
    on it at once; `remaining` bounds each call besides (connecting, before there is a socket).
    Use it as a context manager: the timer runs inside the `with`.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._cut_off = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def __enter__(self) -> AttemptDeadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
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
