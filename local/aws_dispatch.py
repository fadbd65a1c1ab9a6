"""The functions' AWS calls served by moto's backends directly, without HTTP.

botocore still builds and parses every call as it does against AWS (the handlers' code is
unchanged; in worker processes it signs with the credential scope only, local.botocore_speed);
only the transport differs: instead of an HTTP round trip to moto's server (a
connection and a thread per call, Flask, and moto's search for the backend on every request),
the prepared request is handed to the same moto handler in this process, or, from a worker
process, over a local socket (local.workers) to the process that holds moto's state. A call to
any other endpoint (the Lambda Invoke API, a webhook) still goes over HTTP.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

Reply = tuple[int, dict[str, str], bytes]
Dispatch = Callable[[str, str, str, dict[str, str], bytes], Reply]

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([^/,]+)/([^/,]+)/aws4_request")


class MotoDispatch:
    """Serves one prepared AWS request from moto's backends in this process, the way moto's own
    server does, and answers (status, headers, body)."""

    def __init__(self) -> None:
        self._routes: dict[str, list[tuple[re.Pattern[str], Any]]] = {}
        self._lock = threading.Lock()

    def __call__(
        self, service: str, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> Reply:
        from moto.core.exceptions import HTTPException

        parts = urlsplit(url)
        region = "us-east-1"
        if match := _CREDENTIAL_SCOPE.search(headers.get("Authorization", "")):
            region = match[1]
        # moto's handlers are keyed by AWS's hostnames; the path and query are kept.
        aws_url = f"https://{service}.{region}.amazonaws.com{parts.path or '/'}"
        if parts.query:
            aws_url += f"?{parts.query}"
        handler = self._handler_for(service, aws_url)
        request = _request(method, aws_url, headers, body)
        try:
            status, reply_headers, reply_body = handler(request, request.raw_url, request.headers)
        except HTTPException as error:
            status, reply_headers, reply_body = error.code, error.get_headers(), error.get_body()
        if isinstance(reply_body, str):
            reply_body = reply_body.encode("utf-8")
        return int(status), {str(k): str(v) for k, v in dict(reply_headers).items()}, reply_body

    def _handler_for(self, service: str, aws_url: str) -> Any:
        clean = aws_url.split("?", 1)[0]
        for pattern, handler in self._routes_of(service, clean):
            if pattern.match(clean):
                return handler
        raise LookupError(f"moto serves no {clean}")

    def _routes_of(self, service: str, clean_url: str) -> list[tuple[re.Pattern[str], Any]]:
        """moto's URL handlers of the backend serving `clean_url`, found once per service (moto
        itself searches every backend's patterns on every call)."""
        with self._lock:
            if service not in self._routes:
                self._routes[service] = _moto_routes(clean_url)
            return self._routes[service]


def _request(method: str, url: str, headers: dict[str, str], body: bytes) -> Any:
    """moto's Request for an AWS call, as `Request.from_primitives` builds it (through werkzeug's
    EnvironBuilder, a tenth of a millisecond a call). A call to the root path with no query
    (DynamoDB's, SQS's, every JSON API's) gets the same WSGI environ made directly; any other
    takes moto's way."""
    from moto.core.request import Request

    parts = urlsplit(url)
    if (
        parts.path != "/"
        or parts.query
        or parts.scheme != "https"
        or parts.port is not None
        or any("_" in name for name in headers)
    ):
        return Request.from_primitives(method, url, headers, body)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "REQUEST_URI": "/",
        "RAW_URI": "/",
        "SERVER_NAME": parts.netloc,
        "SERVER_PORT": "443",
        "HTTP_HOST": parts.netloc,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    # As werkzeug does: headers of one name joined, and a Host header (botocore sends one, with
    # the endpoint it was given) replaces the URL's host.
    sent: dict[str, str] = {}
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):  # the body's own length stands
            continue
        if key == "CONTENT_TYPE":
            environ.setdefault(key, value)  # werkzeug reads the first
        else:
            key = f"HTTP_{key}"
            sent[key] = f"{sent[key]}, {value}" if key in sent else value
    environ.update(sent)
    environ["moto.preserved_header_names"] = {}  # only x-amz-meta-* names with "_" are kept
    return Request(environ)


def _moto_routes(clean_url: str) -> list[tuple[re.Pattern[str], Any]]:
    import moto.backend_index as backend_index
    import moto.backends as backends
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.base_backend import BackendDict

    for name, pattern in backend_index.backend_url_patterns:
        if not pattern.match(clean_url):
            continue
        backend_dict = backends.get_backend(name)  # type: ignore[call-overload]
        if isinstance(backend_dict, BackendDict):
            regions = backend_dict[DEFAULT_ACCOUNT_ID]
            backend = regions["us-east-1"] if "us-east-1" in regions else regions["aws"]
        else:
            backend = backend_dict["global"]
        return [(re.compile(url), handler) for url, handler in backend.urls.items()]
    raise LookupError(f"moto serves no {clean_url}")


def route_to(dispatch: Dispatch, endpoint: str) -> Callable[..., Any]:
    """A botocore `before-send` handler that answers every request bound for `endpoint` (moto's
    server URL) through `dispatch` instead of HTTP, and lets any other request go out."""
    from botocore.awsrequest import AWSResponse

    prefix = endpoint.rstrip("/")

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        if not (request.url == prefix or request.url.startswith(prefix + "/")):
            return None
        match = _CREDENTIAL_SCOPE.search(str(request.headers.get("Authorization", "")))
        if match is None:  # unsigned: let moto's server answer it
            return None
        body = request.body or b""
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = {
            k: v.decode() if isinstance(v, bytes) else str(v) for k, v in request.headers.items()
        }
        status, reply_headers, reply_body = dispatch(
            match[2], request.method, request.url, headers, body
        )
        return AWSResponse(request.url, status, reply_headers, _Raw(reply_body))

    return before_send


class _Raw(BytesIO):
    """The body of a dispatched reply, readable as botocore reads an HTTP response's."""

    def stream(self, **_: Any) -> Any:
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


def install(before_send: Callable[..., Any]) -> None:
    """Routes the AWS clients created from now on in this process (boto3's default session, the
    one the handlers' `boto3.client(...)` uses) through `before_send`."""
    import boto3

    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-send", before_send)


def uninstall(before_send: Callable[..., Any]) -> None:
    import boto3

    if boto3.DEFAULT_SESSION is not None:
        boto3.DEFAULT_SESSION.events.unregister("before-send", before_send)
