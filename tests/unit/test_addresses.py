"""Unit tests for task_scheduler.addresses: which targets a webhook may be sent to.

Contract: targets resolving to loopback, private, link-local, CGNAT, multicast, reserved or
unspecified addresses, in any spelling (legacy IPv4, IPv4-mapped, NAT64, 6to4), are refused;
every resolved address is checked; only local mode may allow loopback.
No DNS: every test injects a fake resolver (system_resolver is tested over a fake getaddrinfo).
"""

import socket
import threading
import time
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from task_scheduler import addresses
from task_scheduler.actions.webhook import WebhookValidator
from task_scheduler.addresses import (
    ForbiddenTarget,
    NameNotResolved,
    allowed_addresses,
    forbidden_reason,
    system_resolver,
    url_addresses,
)

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:3c50"
UNSPECIFIED_V4 = "0.0.0.0"  # a target to refuse, not a bind address

# (host as urlsplit().hostname gives it, the address it means, the category the reason names)
FORBIDDEN = [
    ("2130706433", "127.0.0.1", "loopback"),
    ("0x7f.1", "127.0.0.1", "loopback"),
    ("127.1", "127.0.0.1", "loopback"),
    ("0177.0.0.1", "127.0.0.1", "loopback"),
    ("127.0.0.1", "127.0.0.1", "loopback"),
    ("::1", "::1", "loopback"),
    ("::ffff:169.254.169.254", "::ffff:169.254.169.254", "link-local"),
    ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "link-local"),
    ("2002:a9fe:a9fe::1", "2002:a9fe:a9fe::1", "link-local"),
    ("100.64.0.1", "100.64.0.1", "shared address space (CGNAT)"),
    ("224.0.0.1", "224.0.0.1", "multicast"),
    (UNSPECIFIED_V4, UNSPECIFIED_V4, "unspecified"),
    ("10.0.0.1", "10.0.0.1", "private"),
    ("172.16.0.1", "172.16.0.1", "private"),
    ("192.168.1.1", "192.168.1.1", "private"),
    ("169.254.169.254", "169.254.169.254", "link-local"),
    ("fe80::1", "fe80::1", "link-local"),
    ("fc00::1", "fc00::1", "private"),
    ("ff02::1", "ff02::1", "multicast"),
    ("::", "::", "unspecified"),
    ("240.0.0.1", "240.0.0.1", "reserved"),
    ("255.255.255.255", "255.255.255.255", "reserved"),
    ("198.18.0.1", "198.18.0.1", "not globally routable"),
    ("192.0.2.1", "192.0.2.1", "not globally routable"),
    # Deprecated ranges Python's is_global still calls global (issue 11).
    ("192.88.99.1", "192.88.99.1", "6to4 relay anycast"),
    ("192.88.99.255", "192.88.99.255", "6to4 relay anycast"),
    ("3227017985", "192.88.99.1", "6to4 relay anycast"),
    ("0xc0.0x58.0x63.1", "192.88.99.1", "6to4 relay anycast"),
    ("::ffff:192.88.99.1", "::ffff:192.88.99.1", "6to4 relay anycast"),
    ("64:ff9b::c058:6301", "64:ff9b::c058:6301", "6to4 relay anycast"),
    ("2002:c058:6301::1", "2002:c058:6301::1", "6to4 relay anycast"),
    ("fec0::1", "fec0::1", "site-local"),
    ("FEC0::1", "fec0::1", "site-local"),
    (
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "site-local",
    ),
]
FORBIDDEN_IDS = [host for host, _, _ in FORBIDDEN]

# What glibc's getaddrinfo answers for the legacy spellings; literals resolve to themselves.
GLIBC_LEGACY = {"2130706433": "127.0.0.1", "0x7f.1": "127.0.0.1", "127.1": "127.0.0.1"}


def glibc_like(host, port):
    return [GLIBC_LEGACY.get(host, host)]


def always_public(host, port):
    """Resolves everything to a public address: a spelling that reaches it would be allowed."""
    return [PUBLIC_V4]


def never_resolves(host, port):
    raise NameNotResolved(host)


def answers(*texts):
    def resolver(host, port):
        return list(texts)

    return resolver


def must_not_resolve(host, port):
    pytest.fail(f"resolver called for {host!r}")


# --- refused spellings ------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "address", "category"), FORBIDDEN, ids=FORBIDDEN_IDS)
@pytest.mark.parametrize(
    "resolver",
    [glibc_like, always_public, never_resolves, must_not_resolve],
    ids=["glibc-like", "always-public", "never-resolves", "must-not-resolve"],
)
def test_forbidden_spelling_is_refused(host, address, category, resolver):
    with pytest.raises(ForbiddenTarget) as refused:
        allowed_addresses(host, 443, allow_loopback=False, resolver=resolver)
    assert str(ip_address(address)) in refused.value.reason
    assert category in refused.value.reason


@pytest.mark.parametrize("host", ["[::1]", "[::ffff:169.254.169.254]", "[64:ff9b::a9fe:a9fe]"])
def test_bracketed_ipv6_literal_is_refused(host):
    with pytest.raises(ForbiddenTarget):
        allowed_addresses(host, 443, allow_loopback=False, resolver=always_public)


@pytest.mark.parametrize(("host", "address", "category"), FORBIDDEN, ids=FORBIDDEN_IDS)
def test_name_resolving_to_forbidden_address_is_refused(host, address, category):
    with pytest.raises(ForbiddenTarget) as refused:
        allowed_addresses("evil.test", 443, allow_loopback=False, resolver=answers(address))
    assert refused.value.reason.startswith(f"evil.test resolves to {ip_address(address)}, ")
    assert category in refused.value.reason


@pytest.mark.parametrize(
    "resolved",
    [
        [PUBLIC_V4, "127.0.0.1"],
        ["127.0.0.1", PUBLIC_V4],
        [PUBLIC_V6, PUBLIC_V4, "::ffff:10.0.0.1"],
        [PUBLIC_V4, "fe80::1%2"],
    ],
)
def test_every_resolved_address_is_checked(resolved):
    with pytest.raises(ForbiddenTarget):
        allowed_addresses("mixed.test", 80, allow_loopback=False, resolver=answers(*resolved))


@pytest.mark.parametrize("host", ["127.0.0.1.", "0X7F.1", "0x7F000001", "017700000001"])
def test_more_legacy_spellings_are_refused(host):
    with pytest.raises(ForbiddenTarget, match=r"means 127\.0\.0\.1, a loopback address"):
        allowed_addresses(host, 80, allow_loopback=False, resolver=always_public)


# --- allowed ----------------------------------------------------------------------------------


def test_public_name_is_allowed_in_resolver_order():
    result = allowed_addresses(
        "example.test", 443, allow_loopback=False, resolver=answers(PUBLIC_V4, PUBLIC_V6)
    )
    assert result == [IPv4Address(PUBLIC_V4), IPv6Address(PUBLIC_V6)]


def test_resolved_duplicates_are_dropped():
    result = allowed_addresses(
        "example.test", 443, allow_loopback=False, resolver=answers(PUBLIC_V6, PUBLIC_V4, PUBLIC_V6)
    )
    assert result == [IPv6Address(PUBLIC_V6), IPv4Address(PUBLIC_V4)]


def test_resolver_gets_host_and_port():
    calls = []

    def resolver(host, port):
        calls.append((host, port))
        return [PUBLIC_V4]

    allowed_addresses("example.test", 8443, allow_loopback=False, resolver=resolver)
    assert calls == [("example.test", 8443)]


@pytest.mark.parametrize(
    "host",
    [PUBLIC_V4, PUBLIC_V6, f"[{PUBLIC_V6}]", "::ffff:93.184.215.14", "64:ff9b::5db8:d70e"],
)
def test_public_literal_is_allowed_without_resolving(host):
    result = allowed_addresses(host, 443, allow_loopback=False, resolver=must_not_resolve)
    assert len(result) == 1
    assert forbidden_reason(result[0], allow_loopback=False) is None


def test_public_legacy_spelling_is_allowed_as_its_address():
    # 0x5db8d70e is 93.184.215.14: legacy spellings are read, not refused for their looks.
    result = allowed_addresses("0x5db8d70e", 443, allow_loopback=False, resolver=must_not_resolve)
    assert result == [IPv4Address(PUBLIC_V4)]


# --- local mode -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "127.1", "127.0.0.2"])
def test_allow_loopback_lets_loopback_literals_through(host):
    result = allowed_addresses(host, 80, allow_loopback=True, resolver=must_not_resolve)
    assert len(result) == 1


def test_allow_loopback_lets_name_resolving_to_loopback_through():
    result = allowed_addresses(
        "localhost", 80, allow_loopback=True, resolver=answers("::1", "127.0.0.1")
    )
    assert result == [IPv6Address("::1"), IPv4Address("127.0.0.1")]


@pytest.mark.parametrize(
    ("host", "category"),
    [
        ("10.0.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        (UNSPECIFIED_V4, "unspecified"),
        ("100.64.0.1", "CGNAT"),
        ("64:ff9b::7f00:1", "loopback"),  # loopback behind NAT64 is not ours
        ("2002:7f00:1::1", "loopback"),  # nor behind 6to4
    ],
)
def test_allow_loopback_still_refuses_everything_else(host, category):
    with pytest.raises(ForbiddenTarget, match=category):
        allowed_addresses(host, 80, allow_loopback=True, resolver=must_not_resolve)


def test_allow_loopback_still_checks_every_resolved_address():
    with pytest.raises(ForbiddenTarget, match="link-local"):
        allowed_addresses(
            "local.test", 80, allow_loopback=True, resolver=answers("127.0.0.1", "169.254.169.254")
        )


# --- resolution failures ----------------------------------------------------------------------


def test_name_not_resolved_when_resolver_raises():
    with pytest.raises(NameNotResolved):
        allowed_addresses("nowhere.test", 443, allow_loopback=False, resolver=never_resolves)


@pytest.mark.parametrize("resolved", [[], ["not-an-address"]])
def test_name_not_resolved_when_resolver_gives_no_address(resolved):
    with pytest.raises(NameNotResolved):
        allowed_addresses("nowhere.test", 443, allow_loopback=False, resolver=answers(*resolved))


# --- reasons ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("0x7f.1", "0x7f.1 means 127.0.0.1, a loopback address"),
        ("100.64.0.1", "100.64.0.1 is an address in the shared address space (CGNAT)"),
        (
            "::ffff:169.254.169.254",
            "::ffff:169.254.169.254 is an IPv4-mapped form of 169.254.169.254, "
            "a link-local address",
        ),
        (
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::a9fe:a9fe is a NAT64 address for 169.254.169.254, a link-local address",
        ),
        (
            "2002:a9fe:a9fe::1",
            "2002:a9fe:a9fe::1 is a 6to4 address for 169.254.169.254, a link-local address",
        ),
    ],
)
def test_reason_names_address_and_category(host, reason):
    with pytest.raises(ForbiddenTarget) as refused:
        allowed_addresses(host, 443, allow_loopback=False, resolver=must_not_resolve)
    assert refused.value.reason == reason
    assert str(refused.value) == reason


def test_reason_for_a_name_says_what_it_resolves_to():
    with pytest.raises(ForbiddenTarget) as refused:
        allowed_addresses(
            "rebind.test", 443, allow_loopback=False, resolver=answers(PUBLIC_V4, "127.0.0.1")
        )
    assert refused.value.reason == "rebind.test resolves to 127.0.0.1, a loopback address"


# --- forbidden_reason directly ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        # Teredo: server 65.54.227.120, client 10.0.0.1 (stored inverted in the last 32 bits).
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo address with client 10.0.0.1, a private"),
        ("2001:0:a00:1:8000:63bf:a2ff:28f1", "Teredo address with server 10.0.0.1, a private"),
        ("2002:5db8:d70e::1", "not globally routable"),  # 6to4 of a public address: still 6to4
        ("64:ff9b:1::a9fe:a9fe", "169.254.169.254, a link-local"),  # local-use NAT64
        ("64:ff9b:1::5db8:d70e", "not globally routable"),
        ("64:ff9b:1::c058:6301", "192.88.99.1, an address in the deprecated 6to4 relay anycast"),
        ("2001:0:4136:e378:8000:63bf:3fa7:9cfe", "client 192.88.99.1, an address in the dep"),
        ("fec0::1%eth0", "site-local"),
        ("::7f00:1", "reserved"),  # IPv4-compatible (deprecated)
        ("::ffff:0:7f00:1", "reserved"),  # IPv4-translated
        ("3fff::1", "not globally routable"),  # documentation (RFC 9637)
        ("2001:db8::1", "not globally routable"),
        ("ff0e::1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("0.0.0.1", "not globally routable"),
        ("2606:2800:21f:cb07:6820:80da:af6b:3c50%eth0", "scoped"),
    ],
)
def test_forbidden_reason(address, fragment):
    reason = forbidden_reason(ip_address(address), allow_loopback=False)
    assert reason is not None
    assert fragment in reason


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("192.88.99.1", "an address in the deprecated 6to4 relay anycast range (192.88.99.0/24)"),
        ("fec0::1", "a deprecated site-local address (fec0::/10)"),
    ],
)
def test_reason_for_the_deprecated_ranges(address, reason):
    assert forbidden_reason(ip_address(address), allow_loopback=False) == reason
    assert forbidden_reason(ip_address(address), allow_loopback=True) == reason


@pytest.mark.parametrize(
    "address", ["192.88.98.255", "192.88.100.0", "fe7f::1", "fbff::1", "ff00::1"]
)
def test_the_deprecated_ranges_end_where_they_end(address):
    # Whatever these neighbours are (some are refused for another reason), not these ranges.
    reason = forbidden_reason(ip_address(address), allow_loopback=False) or ""
    assert "6to4 relay anycast" not in reason
    assert "site-local" not in reason


@pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, "8.8.8.8", "2001:4860:4860::8888"])
def test_forbidden_reason_none_for_public(address):
    assert forbidden_reason(ip_address(address), allow_loopback=False) is None
    assert forbidden_reason(ip_address(address), allow_loopback=True) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.1"])
def test_forbidden_reason_loopback_depends_on_allow_loopback(address):
    assert "loopback" in forbidden_reason(ip_address(address), allow_loopback=False)
    assert forbidden_reason(ip_address(address), allow_loopback=True) is None


# --- system_resolver (over a fake getaddrinfo: no DNS) ----------------------------------------


def _info(address, port):
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))


def test_system_resolver_unique_addresses_in_order(monkeypatch):
    calls = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        calls.append((host, port, kwargs.get("type")))
        return [_info(PUBLIC_V6, port), _info(PUBLIC_V4, port), _info(PUBLIC_V6, port)]

    monkeypatch.setattr(addresses.socket, "getaddrinfo", fake_getaddrinfo)
    assert system_resolver("example.test", 443) == [PUBLIC_V6, PUBLIC_V4]
    assert calls == [("example.test", 443, socket.SOCK_STREAM)]


def test_system_resolver_failure_is_name_not_resolved(monkeypatch):
    def fake_getaddrinfo(host, port, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(addresses.socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(NameNotResolved, match=r"nowhere\.test"):
        system_resolver("nowhere.test", 443)


def test_system_resolver_reads_numeric_host_without_dns():
    # A numeric host never leaves getaddrinfo; this is the one real call in these tests.
    assert system_resolver("127.0.0.1", 80) == ["127.0.0.1"]


def test_allowed_addresses_uses_system_resolver_by_default(monkeypatch):
    monkeypatch.setattr(
        addresses.socket, "getaddrinfo", lambda host, port, **kw: [_info("10.1.2.3", port)]
    )
    with pytest.raises(ForbiddenTarget, match=r"10\.1\.2\.3, a private address"):
        allowed_addresses("internal.test", 443, allow_loopback=False)


# --- a bound on resolution --------------------------------------------------------------------

# When scheduling, a name must resolve within a few seconds: the API function has 10 s in all.
SCHEDULING_RESOLVE_BOUND = 5.0


@pytest.fixture
def stalled_resolver():
    """A resolver that does not answer until the test ends (10 s at most, so that without a
    bound the test fails rather than hangs); then it says PUBLIC_V4."""
    release = threading.Event()

    def resolver(host, port):
        release.wait(10)
        return [PUBLIC_V4]

    yield resolver
    release.set()


def test_a_name_that_does_not_resolve_in_time_is_not_resolved(stalled_resolver):
    started = time.monotonic()
    with pytest.raises(NameNotResolved):
        url_addresses("https://slow.test/hook", allow_loopback=False, resolver=stalled_resolver)
    assert time.monotonic() - started < SCHEDULING_RESOLVE_BOUND


def test_scheduling_accepts_a_name_that_does_not_resolve_in_time(stalled_resolver):
    # As for a name that does not resolve at all: accepted, and checked again at sending.
    validator = WebhookValidator(resolver=stalled_resolver)
    started = time.monotonic()
    request = validator.validate({"url": "https://slow.test/hook"})
    assert request.url == "https://slow.test/hook"
    assert time.monotonic() - started < SCHEDULING_RESOLVE_BOUND
