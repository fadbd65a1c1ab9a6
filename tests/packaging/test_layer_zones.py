"""The layer `sam build` makes carries its own time zone data: Lambda's runtime may have no time
zone database, and zoned crons (task_scheduler.zoned_cron) read zones from the `tzdata` package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.packaging

# Run with no site-packages at all (-S) and no PYTHON* variables (-I): only the built layer and
# the standard library can be imported.
ZONED_CRON_FROM_THE_LAYER_ALONE = """
import sys
sys.path.insert(0, sys.argv[1])
from datetime import UTC, datetime

import tzdata
from task_scheduler.zoned_cron import ZonedCron

assert tzdata.__file__.startswith(sys.argv[1]), tzdata.__file__
cron = ZonedCron.parse("cron(30 1 * * ? *)", "America/New_York")
print(cron.next_after(datetime(2027, 11, 6, 12, tzinfo=UTC)).isoformat())
"""


@pytest.fixture(scope="module")
def layer(build_dir: Path) -> Path:
    """The layer of the session's `sam build` (tests/packaging/conftest.py)."""
    return build_dir / "SchedulerLayer" / "python"


def test_the_layer_ships_the_zone_data(layer: Path) -> None:
    assert (layer / "tzdata" / "zones").is_file()
    assert (layer / "tzdata" / "zoneinfo" / "Europe" / "Paris").is_file()


def test_zoned_crons_work_from_the_layer_alone(layer: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", ZONED_CRON_FROM_THE_LAYER_ALONE, str(layer)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-1500:]
    # New York's fall-back day: 01:30 runs once, at its first instant (EDT).
    assert result.stdout.strip() == "2027-11-07T05:30:00+00:00"
