"""Targets the scheduler must refuse (issue 4, point 4; issue 11, point 7), and a resolver that
records lookups."""

from __future__ import annotations

# Every spelling the issue lists: decimal, hex, short, IPv6 loopback, IPv4-mapped, NAT64, 6to4,
# CGNAT, multicast, unspecified.
ISSUE_SPELLINGS = [
    "http://2130706433/",
    "http://0x7f.1/",
    "http://127.1/",
    "http://[::1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://0.0.0.0/",
    # Issue 11: deprecated ranges, the 6to4 relay anycast one in the spellings above too.
    "http://[fec0::1]/",
    "http://192.88.99.1/",
    "http://3227017985/",
    "http://[::ffff:192.88.99.1]/",
    "http://[64:ff9b::c058:6301]/",
    "http://[2002:c058:6301::1]/",
]


class RecordingResolver:
    """Answers every name with `addresses` (or raises `raises`) and records each lookup."""

    def __init__(self, *addresses, raises=None):
        self.addresses = list(addresses)
        self.raises = raises
        self.calls = []

    def __call__(self, host, port):
        self.calls.append((host, port))
        if self.raises is not None:
            raise self.raises
        return self.addresses
