"""API Gateway (REST, Lambda proxy integration) and the Lambda Invoke API, emulated over HTTP on
127.0.0.1, plus the local inbox."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.functions import LocalFunction
from local.inbox import Inbox
from local.template import ApiRoute
from task_scheduler.errors import quote

log = logging.getLogger("local.api")

# API Gateway's own payload limit; the handler enforces the API's smaller one (256 KiB).
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
INBOX_PATH = "/_local/inbox"
_JSON = "application/json"


@dataclass(frozen=True)
class CompiledRoute:
    route: ApiRoute
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, route: ApiRoute) -> CompiledRoute:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route.path))
        return cls(route, re.compile(f"^{regex}$"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 makes the kernel refuse connections when a few dozen
    # clients connect at once (seen with 16 clients: refusals and a 1 s client retry each).
    request_queue_size = 128


class _LoopbackService:
    """An HTTP server on 127.0.0.1 answering with `handle`, on its own thread."""

    def __init__(self, port: int, name: str) -> None:
        self._server = _Server(("127.0.0.1", port), _handler_class(self.handle))
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def handle(self, request: _Request) -> _Reply:
        raise NotImplementedError


class ApiGateway(_LoopbackService):
    """Serves the template's `Api` routes; every route needs `x-api-key` (403 otherwise)."""

    def __init__(
        self,
        routes: list[ApiRoute],
        functions: dict[str, LocalFunction],
        api_key: str,
        inbox: Inbox,
        stage: str,
        account: str,
        port: int,
    ) -> None:
        self._routes = [CompiledRoute.of(route) for route in routes]
        self._functions = functions
        self._api_key = api_key
        self._inbox = inbox
        self._stage = stage
        self._account = account
        super().__init__(port, "api")

    def handle(self, request: _Request) -> _Reply:
        path = urlsplit(request.target).path
        if path == INBOX_PATH or path.startswith(INBOX_PATH + "/"):
            return self._inbox_request(request, path)
        if request.headers_lower.get("x-api-key") != self._api_key:
            return _Reply.json(403, {"message": "Forbidden"})
        for compiled in self._routes:
            match = compiled.pattern.match(path)
            if match and compiled.route.method == request.method:
                return self._invoke(compiled.route, match.groupdict(), request)
        if any(c.pattern.match(path) for c in self._routes):
            return _Reply.json(
                405, {"message": f"Method {quote(request.method)} not allowed on {quote(path)}."}
            )
        return _Reply.json(404, {"message": f"No route for {quote(request.method)} {quote(path)}."})

    def _inbox_request(self, request: _Request, path: str) -> _Reply:
        # GET on the inbox itself lists deliveries (key required); anything else is a delivery.
        if (
            path == INBOX_PATH
            and request.method in ("GET", "DELETE")
            and "x-api-key" in request.headers_lower
        ):
            if request.headers_lower["x-api-key"] != self._api_key:
                return _Reply.json(403, {"message": "Forbidden"})
            if request.method == "DELETE":
                self._inbox.clear()
            return _Reply.json(200, self._inbox.listing())
        self._inbox.record(request.method, request.target, request.headers, request.body)
        return _Reply.json(200, {"received": True})

    def _invoke(self, route: ApiRoute, path_params: dict[str, str], request: _Request) -> _Reply:
        event = self.proxy_event(route, path_params, request)
        try:
            result = self._functions[route.function].invoke(event)
        except Exception:
            log.exception("%s failed", route.function)
            return _Reply.json(502, {"message": "Internal server error"})
        return _Reply.from_proxy_result(result)

    def proxy_event(
        self, route: ApiRoute, path_params: dict[str, str], request: _Request
    ) -> dict[str, Any]:
        """The event API Gateway's REST proxy integration sends to the function."""
        parts = urlsplit(request.target)
        multi_query = {k: v for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.header_pairs:
            multi_headers.setdefault(name, []).append(value)
        try:
            body: str | None = request.body.decode("utf-8") if request.body else None
            encoded = False
        except UnicodeDecodeError:
            body, encoded = base64.b64encode(request.body).decode("ascii"), True
        now = datetime.now(UTC)
        return {
            "resource": route.path,
            "path": parts.path,
            "httpMethod": request.method,
            "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": {k: unquote(v) for k, v in path_params.items()} or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": self._account,
                "apiId": "local",
                "resourceId": "local",
                "resourcePath": route.path,
                "httpMethod": request.method,
                "path": f"/{self._stage}{parts.path}",
                "protocol": "HTTP/1.1",
                "stage": self._stage,
                "requestId": str(uuid.uuid4()),
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "identity": {
                    "sourceIp": request.client_ip,
                    "userAgent": request.headers_lower.get("user-agent"),
                    "apiKey": request.headers_lower.get("x-api-key"),
                },
            },
            "body": body,
            "isBase64Encoded": encoded,
        }


class LambdaInvokeApi(_LoopbackService):
    """The Lambda service's Invoke API (`POST /2015-03-31/functions/{name}/invocations`), so the
    handlers' `lambda.invoke(...)` reaches the local functions."""

    _PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")

    def __init__(self, functions: dict[str, LocalFunction]) -> None:
        self._by_name: dict[str, LocalFunction] = {}
        self.register(functions)
        super().__init__(0, "lambda")

    def register(self, functions: dict[str, LocalFunction]) -> None:
        for function in functions.values():
            self._by_name[function.name] = function
            self._by_name[function.arn] = function

    def handle(self, request: _Request) -> _Reply:
        match = self._PATH.match(urlsplit(request.target).path)
        if request.method != "POST" or not match:
            return _Reply.json(404, {"Type": "User", "message": "Unknown operation"})
        function = self._by_name.get(unquote(match["name"]))
        if function is None:
            return _Reply.json(
                404,
                {"Type": "User", "Message": f"Function not found: {unquote(match['name'])}"},
                {"x-amzn-ErrorType": "ResourceNotFoundException"},
            )
        event = json.loads(request.body or b"{}")
        if request.headers_lower.get("x-amz-invocation-type", "RequestResponse") == "Event":
            function.invoke_async(event)
            return _Reply(202, b"", {})
        result = function.invoke(event)
        return _Reply(200, json.dumps(result).encode(), {"Content-Type": _JSON})


# -- a small HTTP layer shared by both servers ----------------------------------------------------


@dataclass
class _Request:
    method: str
    target: str
    header_pairs: list[tuple[str, str]]
    body: bytes
    client_ip: str

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.header_pairs)

    @property
    def headers_lower(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.header_pairs}


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    @classmethod
    def json(cls, status: int, body: Any, headers: dict[str, str] | None = None) -> _Reply:
        return cls(status, json.dumps(body).encode(), {"Content-Type": _JSON, **(headers or {})})

    @classmethod
    def from_proxy_result(cls, result: Any) -> _Reply:
        if not isinstance(result, dict) or "statusCode" not in result:
            return cls.json(502, {"message": "Internal server error"})
        headers: dict[str, str] = {}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(str(v) for v in values)
        headers.update({k: str(v) for k, v in (result.get("headers") or {}).items()})
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
        return cls(int(result["statusCode"]), raw, headers)


def _handler_class(handle: Callable[[_Request], _Reply]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "task-scheduler-local"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > API_GATEWAY_MAX_BODY:
                self._send(_Reply.json(413, {"message": "Request Too Long"}))
                self.close_connection = True
                return
            body = self.rfile.read(length) if length else b""
            request = _Request(
                method=self.command,
                target=self.path,
                header_pairs=list(self.headers.items()),
                body=body,
                client_ip=self.client_address[0],
            )
            started = time.monotonic()
            try:
                reply = handle(request)
            except Exception:
                log.exception("local server failed on %s %s", self.command, self.path)
                reply = _Reply.json(500, {"message": "Local server error; see the log."})
            self._send(reply)
            log.debug(
                "%s %s -> %s in %.0f ms",
                self.command,
                self.path,
                reply.status,
                (time.monotonic() - started) * 1000,
            )

        def _send(self, reply: _Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

    return Handler
