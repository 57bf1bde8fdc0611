"""Disk full and read-only data directories: writes fail clearly, searches keep answering, nothing stored is lost."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

import tripsearch
from tripsearch.errors import StoreReadOnly

from .test_engine import QUERY, paris_lyon


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs of our own, so the test can fill it or make it read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs for the fault tests: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write a filler file until the disk is full."""
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_disk_full_refuses_writes_and_keeps_serving(small_disk: Path) -> None:
    engine = tripsearch.open(small_disk / "data", refresh_interval=0, snapshot_on_close=False)
    try:
        engine.upsert([paris_lyon(f"t-{i}") for i in range(20)], refresh=True)
        before = engine.search(QUERY)
        assert before.total == 20
        fill(small_disk / "filler")
        with pytest.raises(StoreReadOnly) as err:
            for i in range(200):  # a few writes may still fit in free pages
                engine.upsert([paris_lyon(f"more-{i}", route={"type": "LineString", "coordinates": [[2.3522, 48.8566], [4.8357, 45.764]] * 1 + [[4.8357, 45.764]] * 500})])
        assert "refuses writes" in str(err.value)
        after = engine.search(QUERY)
        assert after.total >= 20 and [h.id for h in after.trips][:5] == [h.id for h in before.trips][:5]
        assert engine.get("t-3")["id"] == "t-3"
        (small_disk / "filler").unlink()
        assert engine.upsert([paris_lyon("after-space-freed")], refresh=True).stored == 1
    finally:
        engine.close()
    reopened = tripsearch.open(small_disk / "data", refresh_interval=0, snapshot_on_close=False)
    try:
        assert reopened.get("t-19")["version"] == 1 and reopened.get("after-space-freed")
    finally:
        reopened.close()


def test_read_only_directory_serves_searches_and_refuses_writes(small_disk: Path, tmp_path: Path) -> None:
    """A data directory on a file system mounted read-only (a replica, a full or failing disk remounted by the kernel)."""
    writer = tripsearch.open(small_disk / "data", refresh_interval=0)
    writer.upsert([paris_lyon(f"t-{i}") for i in range(10)], refresh=True)
    writer.close()
    view = tmp_path / "read-only-view"
    view.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(small_disk), str(view)], check=True)
    try:
        engine = tripsearch.open(view / "data", refresh_interval=0.1, snapshot_on_close=False)
        try:
            result = engine.search(QUERY)
            assert result.total == 10
            assert all(h.trip.get("stops") for h in result.trips)  # whole documents, not just ids
            with pytest.raises(StoreReadOnly) as err:
                engine.upsert([paris_lyon("refused")])
            assert "read-only" in str(err.value)
            with pytest.raises(StoreReadOnly):
                engine.delete(["t-1"])
            assert engine.get("t-1")["id"] == "t-1"
        finally:
            engine.close()
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    again = tripsearch.open(small_disk / "data", refresh_interval=0, snapshot_on_close=False)
    try:
        assert again.search(QUERY).total == 10
        assert again.upsert([paris_lyon("accepted")], refresh=True).stored == 1
    finally:
        again.close()
