"""Test order for parallel runs (`make test` runs pytest-xdist workers, see the Makefile).

Most of the suite's time is spent waiting, and a few tests wait for real wall-clock minutes
(marked `slow`). They go first, each followed by one quick test: with `--dist load
--maxschedchunk 1`, xdist hands every worker two tests to start with, then one at a time, so
each slow test starts at once on a worker of its own (while there are enough workers) and its
wait overlaps everything else. Without xdist the order changes nothing but the order."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow = [item for item in items if item.get_closest_marker("slow")]
    if not slow:
        return
    quick = [item for item in items if not item.get_closest_marker("slow")]
    front: list[pytest.Item] = []
    for item in slow:
        front.append(item)
        if quick:
            front.append(quick.pop(0))
    items[:] = front + quick
