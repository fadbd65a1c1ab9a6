"""Shared fixtures for the unit tests."""

import socket

import pytest


@pytest.fixture
def no_dns(monkeypatch):
    """Makes any real name resolution fail the test: unit tests inject a fake resolver, so
    public names such as example.com are never looked up. Opt in with
    `pytestmark = pytest.mark.usefixtures("no_dns")`."""

    def refuse(host, *args, **kwargs):
        raise AssertionError(f"a unit test tried to resolve {host!r}: inject a fake resolver")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
