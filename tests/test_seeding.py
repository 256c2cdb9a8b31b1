"""The one table of random streams: distinct numbers, and every stream constant of the package is in it."""

from __future__ import annotations

import re
from pathlib import Path

import lightning_dd.seeding as seeding

PACKAGE = Path(__file__).resolve().parents[1] / "lightning_dd"


def test_stream_numbers_are_distinct_and_all_in_the_table() -> None:
    values = list(seeding.STREAMS.values())
    assert len(values) == len(set(values))
    constants = {name: value for name, value in vars(seeding).items() if name.startswith("STREAM_")}
    assert sorted(constants.values()) == sorted(values)


def test_no_module_defines_its_own_stream_number() -> None:
    pattern = re.compile(r"^STREAM_\w+\s*=", re.M)
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p.name != "seeding.py" and pattern.search(p.read_text())]
    assert offenders == []
