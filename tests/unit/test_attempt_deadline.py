"""`timeout_seconds` bounds the whole delivery attempt (contract section 5): name resolution,
connecting, the TLS handshake, sending, the status line and headers, and the body, together.

Real receivers on 127.0.0.1 that answer one byte at a time, each byte well within any per-read
timeout, so only a bound on the whole attempt cuts them off. Resolvers are fakes (no DNS).
The time checks are loose on purpose: they tell "cut off at the bound" from "held for as long as
the receiver likes", nothing finer.
"""

import socket
import threading
import time

import pytest

from task_scheduler.actions import ActionContext
from task_scheduler.actions.webhook import parse_webhook_payload
from task_scheduler.delivery import HttpWebhookDeliverer
from tests.support.fakes import StaticSecret
from tests.support.receiver import Trickle, trickling_receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONTEXT = ActionContext(task_id="123e4567-e89b-42d3-a456-426614174000", run_id="r:1", attempt=1)
TIMEOUT = 1
MARGIN = 1.5  # how far past the bound an attempt may end and still count as cut off at it
SLOW_HEADER = b"X-Slow: " + b"a" * 40 + b"\r\n"


def loopback(host, port):
    """Stands in for DNS: every name is 127.0.0.1 (where the test receivers listen)."""
    return ["127.0.0.1"]


def attempt(url, timeout=TIMEOUT, resolver=loopback):
    """One delivery attempt as the execute function makes it; (result, seconds it took)."""
    deliverer = HttpWebhookDeliverer(StaticSecret(SECRET), allow_loopback=True, resolver=resolver)
    request = parse_webhook_payload({"url": url, "data": {"n": 1}, "timeout_seconds": timeout})
    started = time.monotonic()
    result = deliverer.deliver(request, CONTEXT)
    return result, time.monotonic() - started


def assert_cut_off(result, took, timeout=TIMEOUT):
    assert result.succeeded is False
    assert result.error == f"timed out after {timeout:g} s"
    assert result.retryable is True
    assert result.status_code is None
    assert took < timeout + MARGIN


@pytest.mark.parametrize(
    "trickle",
    [
        # Every byte of the answer, the status line first, one at a time.
        Trickle(slowly=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        # The status line at once, then the headers one byte at a time.
        Trickle(
            at_once=b"HTTP/1.1 200 OK\r\n",
            slowly=SLOW_HEADER + b"Content-Length: 2\r\n\r\nok",
        ),
        # The status line and part of the headers, then the rest one byte at a time.
        Trickle(
            at_once=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Slow: a",
            slowly=b"a" * 40 + b"\r\n\r\nok",
        ),
    ],
    ids=["status-line", "headers", "rest-of-headers"],
)
def test_an_answer_trickling_in_is_cut_off_at_the_bound(trickle):
    with trickling_receiver(trickle) as receiver:
        result, took = attempt(f"http://slow.test:{receiver.port}/hook")
    assert receiver.connections == 1
    assert_cut_off(result, took)


def test_a_body_that_stops_arriving_is_cut_off_at_the_bound():
    # Headers at once, then nothing for longer than the bound.
    trickle = Trickle(
        at_once=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", slowly=b"c", interval=10
    )
    with trickling_receiver(trickle) as receiver:
        result, took = attempt(f"http://slow.test:{receiver.port}/hook")
    assert_cut_off(result, took)


def test_a_body_cut_short_is_a_retryable_failure():
    trickle = Trickle(at_once=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    with trickling_receiver(trickle) as receiver:
        result, _ = attempt(f"http://slow.test:{receiver.port}/hook")
    assert result.succeeded is False
    assert result.retryable is True
    assert result.error.startswith("reading the response failed: ")


@pytest.fixture
def stalled_resolver():
    """A resolver that does not answer until the test ends (10 s at most, so that without a
    bound the test fails rather than hangs); then it says 127.0.0.1."""
    release = threading.Event()
    calls = []

    def resolver(host, port):
        calls.append((host, port))
        release.wait(10)
        return ["127.0.0.1"]

    resolver.calls = calls
    yield resolver
    release.set()


def test_name_resolution_that_does_not_answer_is_cut_off_at_the_bound(stalled_resolver):
    trickle = Trickle(at_once=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    with trickling_receiver(trickle) as receiver:
        result, took = attempt(f"http://slow.test:{receiver.port}/hook", resolver=stalled_resolver)
    assert stalled_resolver.calls == [("slow.test", receiver.port)]
    assert receiver.connections == 0
    assert_cut_off(result, took)


@pytest.fixture
def unanswered_port():
    """A port on 127.0.0.1 whose listener's backlog is full: a connect there hangs."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.settimeout(0.3)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.skip("this system never leaves a loopback connect hanging")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def answering_after(seconds):
    """A resolver that takes `seconds` (most of the attempt's time), then says 127.0.0.1."""

    def resolver(host, port):
        time.sleep(seconds)
        return ["127.0.0.1"]

    return resolver


# Connecting and the TLS handshake are each bounded by a socket timeout on their own; what these
# two check is that they get what is left of the attempt, not a fresh timeout of their own.


def test_connecting_gets_only_what_is_left_of_the_bound(unanswered_port):
    url = f"http://slow.test:{unanswered_port}/hook"
    result, took = attempt(url, timeout=3, resolver=answering_after(2.5))
    assert_cut_off(result, took, timeout=3)


def test_a_tls_handshake_gets_only_what_is_left_of_the_bound():
    # A TLS record header announcing 16 KiB, then its bytes one at a time: the handshake waits.
    trickle = Trickle(slowly=b"\x16\x03\x03\x40\x00" + b"\x00" * 60, read_request=False)
    with trickling_receiver(trickle) as receiver:
        url = f"https://slow.test:{receiver.port}/hook"
        result, took = attempt(url, timeout=3, resolver=answering_after(2.5))
    assert receiver.connections == 1
    assert_cut_off(result, took, timeout=3)


def test_deadlines_are_cut_at_their_time_soonest_first_by_one_thread():
    from task_scheduler.attempt_deadline import _Deadlines

    def watchers():
        return {t for t in threading.enumerate() if t.name == "attempt-deadlines"}

    before = watchers()  # the process's own, if a test before this one delivered
    deadlines = _Deadlines()
    cut_at: dict[str, float] = {}
    cut = threading.Event()
    start = time.monotonic()
    due = {"third": 0.6, "first": 0.2, "second": 0.4}

    def cutter(name):
        def record():
            cut_at[name] = time.monotonic()
            if len(cut_at) == len(due):
                cut.set()

        return record

    for name, after in due.items():  # not in time order
        deadlines.add(start + after, cutter(name))
    started = watchers() - before
    assert cut.wait(10)
    assert sorted(cut_at, key=cut_at.get) == ["first", "second", "third"]
    assert all(cut_at[name] >= start + after for name, after in due.items())  # never early
    assert len(started) == 1  # one thread watches every attempt of the process


def test_a_deadline_ended_in_time_is_never_cut():
    from task_scheduler.attempt_deadline import _Deadlines

    deadlines = _Deadlines()
    cut = []
    ended = deadlines.add(time.monotonic() + 0.1, lambda: cut.append("ended"))
    deadlines.add(time.monotonic() + 0.3, lambda: cut.append("kept"))
    ended.cancelled = True
    deadline = time.monotonic() + 10
    while not cut and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cut == ["kept"]
