"""Sending a request to an address that was already checked (see `addresses`).

The TCP connection goes to the pinned IP address, so a DNS answer that changes between the check
and the connection (DNS rebinding) cannot redirect it, while everything the server sees still
uses the URL's host name: the request line, the Host header and, for https, SNI and certificate
hostname verification (which stays on, against requests' CA bundle).

Nothing may route the request elsewhere:
- proxies are ignored by the adapter (a proxy would connect wherever it likes), whether they come
  from `proxies=`, `Session.proxies` or the environment; `pinned_session` also sets
  `trust_env = False` so HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, .netrc and REQUESTS_CA_BUNDLE
  are never read;
- redirects are never followed: a 3xx comes back as the response (the next URL was not checked).

Each socket the session connects is handed to `on_socket` before anything is sent on it, so
that the caller can bound the whole exchange from outside (see `delivery.AttemptDeadline`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from task_scheduler.addresses import DEFAULT_PORTS

type SocketHook = Callable[[socket.socket], None]
"""Given each newly connected socket (TCP, before any TLS handshake or request)."""


def _ignore_socket(sock: socket.socket) -> None:
    pass


class _HandsOverSockets:
    """For urllib3's connection classes: each new socket goes to `on_socket` before it is used."""

    def __init__(self, *args: Any, on_socket: SocketHook, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_socket = on_socket

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()
        self._on_socket(sock)
        return sock


class _HTTPConnection(_HandsOverSockets, HTTPConnection):
    pass


class _HTTPSConnection(_HandsOverSockets, HTTPSConnection):
    pass


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class PinnedAddressAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections all go to one IP address, whatever the URL's host.

    The port is the URL's (default 80 / 443). The caller must have checked that the URL's host
    may be reached at `address` (`addresses.allowed_addresses`). Each socket it connects is
    handed to `on_socket` first.
    """

    def __init__(self, address: str, on_socket: SocketHook = _ignore_socket, **kwargs: Any) -> None:
        self.address = str(ipaddress.ip_address(address.strip("[]")))  # an IP literal, no name
        self._on_socket = on_socket
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # The PoolManager calls these to make its pools; each pool passes `on_socket` (with its
        # other connection keywords) to every connection it makes.
        self.poolmanager.pool_classes_by_scheme = {
            "http": partial(_HTTPConnectionPool, on_socket=self._on_socket),
            "https": partial(_HTTPSConnectionPool, on_socket=self._on_socket),
        }

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str | None = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        # No proxy, ever: with proxies=None, `request_url` sends the path (not the absolute URL)
        # and `get_connection_with_tls_context` never asks for a proxy manager.
        # Certificate verification stays on: verify=False would make `cert_verify` turn it off.
        if not verify:
            verify = True
        return super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=None
        )

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: dict[str, str] | None = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        try:
            host_params, pool_kwargs = self.build_connection_pool_key_attributes(
                request, verify or True, cert
            )
        except ValueError as error:  # as HTTPAdapter does, e.g. for a bad port
            raise requests.exceptions.InvalidURL(error, request=request) from error
        hostname = _url_hostname(request)
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = hostname  # SNI
            pool_kwargs["assert_hostname"] = hostname  # the certificate must name the URL's host
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
        # `proxies` is ignored on purpose. The pool is keyed by address, port, scheme and the
        # TLS settings above, so two names pinned to one address never share TLS connections.
        return self.poolmanager.connection_from_host(
            host=self.address,
            port=host_params["port"],
            scheme=host_params["scheme"],
            pool_kwargs=pool_kwargs,
        )

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        # Without this, http.client would send the pool's host, i.e. the IP address, as Host.
        request.headers["Host"] = host_header(request.url or "")

    def request_url(self, request: requests.PreparedRequest, proxies: dict[str, str] | None) -> str:
        return request.path_url  # never the absolute form a proxy would get


def host_header(url: str) -> str:
    """The Host header an unpinned request to `url` would carry: host, and port unless default."""
    parts = urlsplit(url)
    hostname = (parts.hostname or "").rstrip(".")
    if ":" in hostname:
        hostname = f"[{hostname}]"
    port = parts.port
    if port is None or port == DEFAULT_PORTS.get(parts.scheme.lower()):
        return hostname
    return f"{hostname}:{port}"


def _url_hostname(request: requests.PreparedRequest) -> str:
    hostname = urlsplit(request.url or "").hostname
    if not hostname:
        raise requests.exceptions.InvalidURL("URL has no host", request=request)
    return hostname.rstrip(".")  # as urllib3 does: certificates do not name the trailing dot


class _NoRedirectSession(requests.Session):
    """A Session that never follows redirects, even with allow_redirects=True.

    `max_redirects = 0` alone does not do it: requests then raises TooManyRedirects on any 3xx,
    even with allow_redirects=False (it still works out `response.next`, which also reads the
    whole body despite stream=True). With no redirect target, a 3xx is just the response.
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


def pinned_session(address: str, on_socket: SocketHook = _ignore_socket) -> requests.Session:
    """A new Session whose http:// and https:// requests all connect to `address`.

    trust_env is off (no environment proxies, .netrc or CA bundle overrides), redirects are not
    followed (max_redirects is 0 and 3xx answers are returned as they are). Each socket it
    connects is handed to `on_socket` before it is used.
    """
    session = _NoRedirectSession()
    session.trust_env = False
    session.max_redirects = 0
    adapter = PinnedAddressAdapter(address, on_socket)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
