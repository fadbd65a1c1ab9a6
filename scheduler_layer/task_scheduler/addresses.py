"""Which addresses a webhook may be sent to (contract: targets that are not globally routable).

A target is refused when it resolves to a loopback, private, link-local, shared (CGNAT),
multicast, reserved, unspecified, deprecated (IPv6 site-local, 6to4 relay anycast) or otherwise
not globally routable address, in any spelling:
legacy IPv4 forms (`2130706433`, `0x7f.1`, `127.1`), IPv4-mapped IPv6, NAT64, 6to4 and Teredo.
Every resolved address is checked, not just the first, and the caller connects to one of the
addresses returned here (see `pinned_http`), so DNS cannot change the answer between the check
and the connection.

Only local mode may allow loopback targets (`allow_loopback=True`), and only loopback.

Resolution is bounded (`resolve_timeout_seconds`): a name that does not resolve in time is
treated like one that does not resolve (`ResolutionTimedOut` is a `NameNotResolved`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit

type IPAddress = IPv4Address | IPv6Address

Resolver = Callable[[str, int], list[str]]
"""host, port -> IP address strings, in preference order. Raises NameNotResolved."""


class NameNotResolved(Exception):
    """The name did not resolve (DNS failure). Retryable when sending; accepted when scheduling."""


class ResolutionTimedOut(NameNotResolved):
    """The resolver did not answer in time."""


class ForbiddenTarget(Exception):
    """The target is, or resolves to, an address webhooks may not be sent to.

    `reason` is a whole sentence naming the host, the address and its category, e.g.
    "internal.example resolves to 127.0.0.1, a loopback address".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


DEFAULT_PORTS = {"http": 80, "https": 443}

RESOLVE_TIMEOUT_SECONDS = 3.0
"""How long scheduling waits for a name to resolve (the API function has 10 s in all). Sending
waits for what is left of the attempt's `timeout_seconds` instead."""


def resolve_within(resolver: Resolver, host: str, port: int, seconds: float) -> list[str]:
    """`resolver(host, port)`, waited for at most `seconds`; raises ResolutionTimedOut after.

    getaddrinfo cannot be interrupted or given a timeout, so the resolver runs in a daemon
    thread and a late answer is dropped (the thread ends when the system resolver gives up).
    """
    answer: Future[list[str]] = Future()

    def resolve() -> None:
        try:
            answer.set_result(resolver(host, port))
        except Exception as error:  # noqa: BLE001 - answer.result() raises it in the caller
            answer.set_exception(error)

    if seconds > 0:
        threading.Thread(target=resolve, name=f"resolve {host}", daemon=True).start()
        wait_for([answer], timeout=seconds)
    if not answer.done():
        raise ResolutionTimedOut(f"{host} did not resolve within {seconds:g} s")
    return answer.result()


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the system resolver (getaddrinfo); unique addresses in the order returned."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise NameNotResolved(f"{host} did not resolve: {error}") from error
    except UnicodeError as error:  # a label the IDNA codec refuses (empty, too long)
        raise NameNotResolved(f"{host} is not a valid host name: {error}") from error
    addresses: list[str] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


_SHARED = IPv4Network("100.64.0.0/10")
# Deprecated, and still "global" to this Python's `is_global`.
_SITE_LOCAL = IPv6Network("fec0::/10")  # RFC 3879
_6TO4_RELAY_ANYCAST = IPv4Network("192.88.99.0/24")  # RFC 7526
_PRIVATE = (
    IPv4Network("10.0.0.0/8"),
    IPv4Network("172.16.0.0/12"),
    IPv4Network("192.168.0.0/16"),
    IPv6Network("fc00::/7"),
)
# Not globally routable although this Python's `is_global` may say otherwise.
_NOT_GLOBAL = (IPv6Network("3fff::/20"),)  # documentation (RFC 9637)
_NAT64 = IPv6Network("64:ff9b::/96")  # well-known prefix: the IPv4 address is the last 32 bits
_NAT64_LOCAL = IPv6Network("64:ff9b:1::/48")  # local-use prefix (RFC 8215), never global


def forbidden_reason(address: IPAddress, allow_loopback: bool) -> str | None:
    """Why `address` may not be a target, e.g. "a loopback address"; None when it may.

    Allowed means globally routable (`is_global`) and not multicast, and so is any IPv4 address
    embedded in it (IPv4-mapped, NAT64, 6to4, Teredo). With `allow_loopback`, loopback addresses
    (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) are allowed too, and nothing else is.
    """
    if isinstance(address, IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            reason = forbidden_reason(mapped, allow_loopback)
            return None if reason is None else f"an IPv4-mapped form of {mapped}, {reason}"
        for label, embedded in _embedded_ipv4(address):
            # Loopback behind NAT64, 6to4 or Teredo is somebody else's loopback: never allowed.
            reason = forbidden_reason(embedded, allow_loopback=False)
            if reason is not None:
                return f"{label} {embedded}, {reason}"
    if allow_loopback and address.is_loopback:
        return None
    category = _category(address)
    if category is not None:
        return category
    if isinstance(address, IPv6Address):
        if address.scope_id:
            return "a scoped (zone-qualified) address, not globally routable"
        if address in _NAT64:
            return None  # the embedded IPv4 address was checked above
        if address.is_reserved:
            return "a reserved address"
    return None


def _category(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, IPv4Address) and address in _SHARED:
        return "an address in the shared address space (CGNAT)"
    if any(address in network for network in _PRIVATE if network.version == address.version):
        return "a private address"
    if isinstance(address, IPv6Address) and address in _SITE_LOCAL:
        return "a deprecated site-local address (fec0::/10)"
    if isinstance(address, IPv4Address) and address in _6TO4_RELAY_ANYCAST:
        return "an address in the deprecated 6to4 relay anycast range (192.88.99.0/24)"
    if address.is_reserved and isinstance(address, IPv4Address):
        return "a reserved address"
    if not address.is_global or any(
        address in network for network in _NOT_GLOBAL if network.version == address.version
    ):
        return "an address that is not globally routable"
    return None


def _embedded_ipv4(address: IPv6Address) -> list[tuple[str, IPv4Address]]:
    """IPv4 addresses an IPv6 address carries, with how it carries them (as a reason prefix)."""
    found: list[tuple[str, IPv4Address]] = []
    if address in _NAT64 or address in _NAT64_LOCAL:
        found.append(("a NAT64 address for", IPv4Address(int(address) & 0xFFFFFFFF)))
    if address.sixtofour is not None:
        found.append(("a 6to4 address for", address.sixtofour))
    if address.teredo is not None:
        server, client = address.teredo
        found.append(("a Teredo address with server", server))
        found.append(("a Teredo address with client", client))
    return found


# What inet_aton (and glibc's getaddrinfo) read as an IPv4 address besides dotted quads:
# 1 to 4 parts, each decimal, octal (leading 0) or hex (0x), e.g. 2130706433, 0x7f.1, 127.1.
_LEGACY_IPV4 = re.compile(r"[0-9a-fA-FxX.]+")


def _literal(host: str) -> tuple[IPAddress, bool] | None:
    """(address, is it a legacy spelling) when `host` is an IP literal, else None."""
    try:
        return ipaddress.ip_address(host), False
    except ValueError:
        pass
    candidate = host[:-1] if host.endswith(".") else host  # "127.0.0.1." is 127.0.0.1 too
    if _LEGACY_IPV4.fullmatch(candidate):
        try:
            return IPv4Address(socket.inet_aton(candidate)), True
        except OSError:
            return None
    return None


def allowed_addresses(
    host: str,
    port: int,
    *,
    allow_loopback: bool,
    resolver: Resolver = system_resolver,
    resolve_timeout_seconds: float = RESOLVE_TIMEOUT_SECONDS,
) -> list[IPAddress]:
    """The addresses `host` may be reached at, in resolver order; the caller connects to one.

    `host` is as `urlsplit(url).hostname` gives it (IPv6 without brackets; brackets are
    tolerated). IP literals, including the legacy IPv4 spellings inet_aton accepts, are not
    resolved. Raises ForbiddenTarget if any address is forbidden, NameNotResolved if there is none
    (ResolutionTimedOut if the resolver took longer than `resolve_timeout_seconds`).
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    literal = _literal(host)
    if literal is not None:
        address, legacy = literal
        reason = forbidden_reason(address, allow_loopback)
        if reason is not None:
            if legacy:
                raise ForbiddenTarget(f"{host} means {address}, {reason}")
            raise ForbiddenTarget(f"{address} is {reason}")
        return [address]
    addresses: list[IPAddress] = []
    for text in resolve_within(resolver, host, port, resolve_timeout_seconds):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue  # not an address: nothing to connect to, so nothing to check
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise NameNotResolved(f"{host} resolved to no address")
    for address in addresses:
        reason = forbidden_reason(address, allow_loopback)
        if reason is not None:
            raise ForbiddenTarget(f"{host} resolves to {address}, {reason}")
    return addresses


def url_addresses(
    url: str,
    *,
    allow_loopback: bool,
    resolver: Resolver = system_resolver,
    resolve_timeout_seconds: float = RESOLVE_TIMEOUT_SECONDS,
) -> list[IPAddress]:
    """`allowed_addresses` for an absolute http(s) URL's host and port (default port by scheme)."""
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
    return allowed_addresses(
        parts.hostname or "",
        port,
        allow_loopback=allow_loopback,
        resolver=resolver,
        resolve_timeout_seconds=resolve_timeout_seconds,
    )
