"""Tests of tripsearch.data.stored: tables built once and read back by later processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

from tripsearch.data import places, stored as stored_module
from tripsearch.data.stored import stored, tables_dir

__all__: list[str] = []


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRIPSEARCH_CACHE", str(tmp_path))
    return tmp_path / "tables"


def counted(value: object) -> tuple[list[int], Callable[[], object]]:
    calls: list[int] = []

    def build() -> object:
        calls.append(1)
        return value

    return calls, build


def test_a_table_is_built_once_then_read_back(cache: Path) -> None:
    assert tables_dir() == cache
    calls, build = counted({"a": [1, 2.5, "x"]})
    assert stored("t", build, [stored_module]) == {"a": [1, 2.5, "x"]}
    assert stored("t", build, [stored_module]) == {"a": [1, 2.5, "x"]}
    assert len(calls) == 1
    assert len(list(cache.glob("t-*.pickle"))) == 1 and not list(cache.glob(".*"))  # no temporary file left


def test_another_source_or_name_is_another_table(cache: Path, tmp_path: Path) -> None:
    source = tmp_path / "builder.py"
    source.write_text("X = 1\n")
    module = ModuleType("builder")
    module.__file__ = str(source)
    first, build_one = counted(1)
    second, build_two = counted(2)
    assert stored("t", build_one, [module]) == 1
    source.write_text("X = 2\n")  # the code that builds it changed: the stored table is not the one it builds
    assert stored("t", build_two, [module]) == 2
    assert stored("u", build_one, [module]) == 1  # a table of another name (or arguments)
    assert (len(first), len(second)) == (2, 1)


def test_a_damaged_file_is_built_again_and_replaced(cache: Path) -> None:
    stored("t", lambda: [1, 2, 3], [stored_module])
    (path,) = cache.glob("t-*.pickle")
    path.write_bytes(path.read_bytes()[:5])  # cut short, as by a full disk
    calls, build = counted([1, 2, 3])
    assert stored("t", build, [stored_module]) == [1, 2, 3]
    assert stored("t", build, [stored_module]) == [1, 2, 3]
    assert len(calls) == 1


def test_a_directory_that_cannot_be_written_builds_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("TRIPSEARCH_CACHE", str(blocked))
    calls, build = counted("t")
    assert stored("t", build, [stored_module]) == "t"
    assert stored("t", build, [stored_module]) == "t"
    assert len(calls) == 2


def test_places_read_back_are_the_places_built(cache: Path) -> None:
    """A fresh process builds the place tables, the next one reads them: the same places, search and nearest place."""
    probe = textwrap.dedent("""
        import hashlib
        from tripsearch.data.places import load_places, nearest_places, search_places
        places = load_places()
        print(len(places), hashlib.sha256(repr(places).encode()).hexdigest())
        print([(p.name, p.country) for p in search_places("sai", 10)], [p.name for p in search_places("wien", 3)])
        print([p.name for p in nearest_places([45.76, -33.9, 64.1, 0.0], [4.84, 151.2, -21.9, 179.99])])
    """)
    env = {"TRIPSEARCH_CACHE": str(cache.parent), "PATH": "/usr/bin:/bin"}
    built = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    assert {p.name.split("-")[0] for p in cache.glob("*.pickle")} == {"places", "place", "nearest"}
    read = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    assert read == built
    here = places.load_places()
    assert built.split("\n")[0] == f"{len(here)} {hashlib.sha256(repr(here).encode()).hexdigest()}"


def test_a_table_under_another_key_goes_when_nobody_read_it_for_a_month(cache: Path, tmp_path: Path) -> None:
    """An upgrade's new table deletes the old one once unused; another checkout's, read lately, stays; so do other names'."""
    source = tmp_path / "builder.py"
    module = ModuleType("builder")
    module.__file__ = str(source)

    def store(version: str, name: str = "t") -> Path | None:
        """Return the file written for it (None: read back)."""
        source.write_text(f"X = {version!r}\n")  # each version of the code that builds it keys its own file
        before = set(cache.glob("*.pickle"))
        assert stored(name, lambda: version, [module]) == version
        return next(iter(set(cache.glob("*.pickle")) - before), None)

    def age(path: Path, seconds: float) -> None:
        os.utime(path, (time.time() - seconds,) * 2)

    month = stored_module.KEEP_UNREAD_S
    old, recent, another = store("old"), store("recent"), store("other name", name="t-x")
    assert old and recent and another
    age(old, month + 60)
    age(another, month + 60)
    age(recent, month - 3600)
    assert store("recent") is None and recent.stat().st_mtime > time.time() - 60  # read back: marked as read
    age(recent, month - 3600)  # read by another checkout within the month
    new = store("new")
    assert set(cache.glob("*.pickle")) == {recent, another, new}  # the old one went, and only it
