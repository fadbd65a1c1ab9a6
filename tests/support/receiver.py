"""A real webhook receiver on 127.0.0.1 that records what it gets and answers as told."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: datetime


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


class Receiver:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self.answers: list[Answer] = []  # consumed in order; the last one repeats
        self.default = Answer()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def record(self, request: ReceivedRequest) -> Answer:
        with self._lock:
            self._requests.append(request)
            if self.answers:
                return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            return self.default

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Polls until `count` requests arrived or the deadline passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.requests
            if len(got) >= count:
                return got
            time.sleep(0.02)
        return self.requests


def _handler_for(receiver_ref: Callable[[], Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = receiver_ref().record(
                ReceivedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k: v for k, v in self.headers.items()},
                    body=body,
                    received_at=datetime.now(UTC),
                )
            )
            if answer.delay_seconds:
                time.sleep(answer.delay_seconds)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # As a web server's listen backlog (nginx 511, gunicorn 2048): Python's default of 5 drops
    # connections a burst of deliveries opens at once, and each dropped one is tried again a
    # second later (TCP's first retransmission), a second of lateness that is not the sender's.
    request_queue_size = 512


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []
    server = _Server(("127.0.0.1", 0), _handler_for(lambda: holder[0]))
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class Trickle:
    """What a trickling receiver sends on each connection: `at_once` straight away, then
    `slowly` one byte every `interval` seconds, then it hangs up. With `read_request`, it first
    reads the request's head (up to the blank line); otherwise whatever arrives first (e.g. a
    TLS ClientHello)."""

    at_once: bytes = b""
    slowly: bytes = b""
    interval: float = 0.2
    read_request: bool = True


class TricklingReceiver:
    """A raw TCP server on 127.0.0.1 that answers every connection as its `Trickle` says; it
    stops sending as soon as the client goes away, and on `stop`."""

    def __init__(self, trickle: Trickle) -> None:
        self.trickle = trickle
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self.connections = 0
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._answer, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _answer(self, client: socket.socket) -> None:
        with client:
            try:
                self._read_request(client)
                client.sendall(self.trickle.at_once)
                for byte in self.trickle.slowly:
                    if self._stopped.wait(self.trickle.interval):
                        return
                    client.sendall(bytes([byte]))
            except OSError:  # the client went away: what the tests expect of it
                return

    def _read_request(self, client: socket.socket) -> None:
        client.settimeout(10)
        received = client.recv(65536)
        while self.trickle.read_request and received and b"\r\n\r\n" not in received:
            received += client.recv(65536)

    def stop(self) -> None:
        self._stopped.set()
        self._threads[0].join(timeout=5)
        self._count_unaccepted()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _count_unaccepted(self) -> None:
        """Counts (and hangs up on) the connections still waiting to be accepted: under load the
        accept loop can lag behind a client that connected and gave up a moment ago."""
        self._listener.setblocking(False)
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # BlockingIOError: none left
                return
            client.close()
            with self._lock:
                self.connections += 1


@contextmanager
def trickling_receiver(trickle: Trickle) -> Iterator[TricklingReceiver]:
    receiver = TricklingReceiver(trickle)
    try:
        yield receiver
    finally:
        receiver.stop()
