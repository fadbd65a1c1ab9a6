"""One worker process of local mode (local.workers): like a set of Lambda containers side by side,
it loads every function of the template with its environment and runs the invocations the main
process sends it, each on its own thread. Its AWS calls go back to the main process, where moto's
state is (local.aws_dispatch); everything else (webhooks, the Lambda Invoke API) over HTTP.

Events and results cross the process boundary as JSON, as they cross Lambda's.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

log = logging.getLogger("local.worker")


@dataclass(frozen=True)
class FunctionsSpec:
    """What a worker needs to load the functions as the main process would."""

    template: dict[str, Any]
    resolve: dict[str, str]
    arns: dict[str, str]
    environment: dict[str, str]
    aws_endpoint: str


@dataclass(frozen=True)
class WorkerAddresses:
    main: str  # the main process's listener: the lifeline, and the AWS calls
    own: str  # this worker's listener: invocations


def run(spec: FunctionsSpec, addresses: WorkerAddresses) -> None:
    """The worker's life: load the functions, serve invocations until the main process is gone."""
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # whole log lines
    logging.basicConfig(
        level=os.environ.get("LOCAL_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s local worker {os.getpid()} %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from local.aws_dispatch import install, route_to
    from local.botocore_speed import make_botocore_cheaper
    from local.functions import add_layers, load_functions

    make_botocore_cheaper()  # every AWS call here is answered by moto
    install(route_to(_Bridge(addresses).dispatch, spec.aws_endpoint))
    add_layers(spec.template)
    functions = load_functions(
        spec.template, spec.resolve, spec.arns, spec.environment, concurrency=1
    )
    gc.freeze()  # the functions' modules and clients stay: no collection scans them again
    listener = Listener(addresses.own, family="AF_UNIX")
    threading.Thread(target=_accept, args=(listener, functions), daemon=True).start()
    lifeline = Client(addresses.main, family="AF_UNIX")
    lifeline.send(("ready", os.getpid()))
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()  # nothing is ever sent: this returns when the main process goes
    os._exit(0)  # threads still running handlers end with the process, as a container's


def _accept(listener: Listener, functions: dict[str, Any]) -> None:
    while True:
        connection = listener.accept()
        threading.Thread(
            target=_serve, args=(connection, functions), name="invocations", daemon=True
        ).start()


def _serve(connection: Connection, functions: dict[str, Any]) -> None:
    """Invocations, one after another, on one connection of the main process."""
    while True:
        try:
            logical_id, event_json, request_id, remaining_ms = connection.recv()
        except (EOFError, OSError):
            return
        connection.send(_invoke(functions[logical_id], event_json, request_id, remaining_ms))


def _invoke(
    function: Any, event_json: str, request_id: str, remaining_ms: int
) -> tuple[str, str, str]:
    """("ok", result JSON, "") or ("error", error type, message), as Lambda reports a function
    error; the traceback goes to this worker's log."""
    from local.functions import LambdaContext

    context = LambdaContext(
        function_name=function.name,
        invoked_function_arn=function.arn,
        memory_limit_in_mb=function.memory_mb,
        timeout_seconds=function.timeout_seconds,
        aws_request_id=request_id,
        _deadline=time.monotonic() + remaining_ms / 1000,
    )
    try:
        result = function.handler(json.loads(event_json), context)
        return "ok", json.dumps(result), ""
    except Exception as error:
        log.exception("%s failed", function.logical_id)
        return "error", type(error).__name__, str(error)


class _Bridge:
    """AWS calls to the main process: one connection per thread, a call at a time on each."""

    def __init__(self, addresses: WorkerAddresses) -> None:
        self._addresses = addresses
        self._local = threading.local()

    def dispatch(
        self, service: str, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = Client(self._addresses.main, family="AF_UNIX")
            connection.send(("aws", os.getpid()))
            self._local.connection = connection
        connection.send((service, method, url, headers, body))
        status, reply_headers, reply_body = connection.recv()
        return status, reply_headers, reply_body
