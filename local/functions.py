"""Lambda, emulated: each function of template.yaml loaded from its CodeUri with its layers and
the environment the template gives it, invoked synchronously (API Gateway) or asynchronously
(EventBridge, `InvocationType=Event`) like the Lambda service does."""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from local.template import ROOT, function_environment, resources_of_type

log = logging.getLogger("local.lambda")
_ENV_LOCK = threading.Lock()
_module_ids = itertools.count()


@dataclass
class LambdaContext:
    """What a handler's `context` argument carries in Lambda."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str
    _deadline: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LocalFunction:
    def __init__(
        self,
        logical_id: str,
        arn: str,
        handler: Callable[[Any, LambdaContext], Any],
        memory_mb: int,
        timeout_seconds: int,
        concurrency: int,
    ) -> None:
        self.logical_id = logical_id
        self.arn = arn
        self.name = arn.rsplit(":", 1)[1]
        # The module's handler, or (local.workers) one that runs it in a worker process.
        self.handler = handler
        self.memory_mb = memory_mb
        self.timeout_seconds = timeout_seconds
        # Like a function's concurrency limit: async events queue when every slot is busy.
        self._slots = threading.BoundedSemaphore(concurrency)
        self._in_flight = 0
        self._lock = threading.Lock()
        # EventInvokeConfig: retries of a failed asynchronous event, then where it goes.
        self.max_retry_attempts = 2
        self.on_failure: Callable[[dict[str, Any]], None] | None = None

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def invoke(self, event: Any) -> Any:
        """A synchronous invocation; an exception is the function's error, as Lambda reports it."""
        context = LambdaContext(
            function_name=self.name,
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
            aws_request_id=str(uuid.uuid4()),
            _deadline=time.monotonic() + self.timeout_seconds,
        )
        return self.handler(event, context)

    def invoke_async(self, event: Any) -> None:
        """An `Event` invocation: returns at once; the handler runs on its own thread."""
        with self._lock:
            self._in_flight += 1
        thread = threading.Thread(
            target=self._run_async, args=(event,), name=f"{self.name}-async", daemon=True
        )
        thread.start()

    def _run_async(self, event: Any) -> None:
        try:
            for attempt in range(1, self.max_retry_attempts + 2):
                try:
                    with self._slots:
                        self.invoke(event)
                    return
                except Exception as error:
                    log.exception("%s failed on an asynchronous event", self.logical_id)
                    if attempt > self.max_retry_attempts:
                        self._give_up(event, error, attempt)
                        return
                    # Lambda waits a minute, then two; local mode a second, then two.
                    time.sleep(attempt)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _give_up(self, event: Any, error: Exception, attempts: int) -> None:
        if self.on_failure is None:
            return
        self.on_failure(
            {
                "version": "1.0",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "requestContext": {
                    "requestId": str(uuid.uuid4()),
                    "functionArn": f"{self.arn}:$LATEST",
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": attempts,
                },
                "requestPayload": event,
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
                "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
            }
        )


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """The function's environment while its module is imported (settings are read then)."""
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def function_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


def load_functions(
    template: dict[str, Any],
    resolve: dict[str, str],
    arns: dict[str, str],
    extra_env: dict[str, str],
    concurrency: int,
    handlers: Callable[[str], Callable[[Any, LambdaContext], Any]] | None = None,
) -> dict[str, LocalFunction]:
    """Every AWS::Serverless::Function of the template, keyed by logical id: its handler imported
    here (the caller has mounted the layers with `add_layers`), or `handlers(logical_id)`."""
    functions = {}
    globals_ = template.get("Globals", {}).get("Function", {})
    for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        props = resource["Properties"]
        env = {
            **function_environment(template, logical_id, resolve),
            # What Lambda sets for every function (the execute function names itself with it).
            "AWS_LAMBDA_FUNCTION_NAME": arns[logical_id].rpartition(":")[2],
            **extra_env,
        }
        if handlers is not None:
            handler = handlers(logical_id)
        else:
            module_file, _, handler_name = props["Handler"].rpartition(".")
            with _environment(env):
                module = import_handler(
                    ROOT / props["CodeUri"] / f"{module_file.replace('.', '/')}.py"
                )
            handler = getattr(module, handler_name)
        functions[logical_id] = LocalFunction(
            logical_id=logical_id,
            arn=arns[logical_id],
            handler=handler,
            memory_mb=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
            timeout_seconds=int(props.get("Timeout", globals_.get("Timeout", 3))),
            concurrency=concurrency,
        )
    return functions


def add_layers(template: dict[str, Any]) -> None:
    """Puts every layer the functions use on the import path (one process hosts them all)."""
    globals_ = template.get("Globals", {}).get("Function", {})
    for resource in resources_of_type(template, "AWS::Serverless::Function").values():
        for layer in resource["Properties"].get("Layers", globals_.get("Layers", [])):
            _add_layer(template, layer)


def _add_layer(template: dict[str, Any], layer: Any) -> None:
    logical_id = layer.get("Ref") if isinstance(layer, dict) else None
    resource = template["Resources"].get(logical_id or "", {})
    content = resource.get("Properties", {}).get("ContentUri")
    if not content:
        raise ValueError(f"local mode only supports layers defined in the template, not {layer}")
    path = str((ROOT / content).resolve())
    if path not in sys.path:
        sys.path.insert(0, path)


def import_handler(path: Path) -> ModuleType:
    """Imports a function's handler file as a fresh module (module-scope clients and settings
    are created now), with the function's folder first on sys.path as Lambda has it."""
    name = f"local_function_{path.parent.name}_{next(_module_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # as Lambda puts the function's folder first
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module
