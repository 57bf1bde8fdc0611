"""Snapshot of the in-memory index next to the database, for a fast restart.

One file: a JSON header line (format, store id, change-feed position, and for
each array its dtype, length and CRC-32), then the raw arrays back to back.
It is written to a temporary file, synced and renamed over the old one, so a
reader sees the old snapshot or the new one, never half of one. On load every
array's checksum is verified; any mismatch, a foreign store id or a position
ahead of the store means the snapshot is not trusted and the index is
rebuilt from SQLite.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..columns import TripColumns
from .memory import PostingSegment

__all__ = ["write_snapshot", "read_snapshot", "snapshot_seq", "SnapshotError", "FORMAT"]

FORMAT = "tripsearch-snapshot-4"
_ARRAY_FIELDS = [f.name for f in fields(TripColumns) if f.name != "ids"]


class SnapshotError(Exception):
    """The snapshot is missing, torn, corrupted or from another store."""


def write_snapshot(path: Path, store_id: str, seq: int, cols: TripColumns, alive: np.ndarray, segment: PostingSegment) -> int:
    """Write a snapshot atomically; return its size in bytes."""
    arrays: dict[str, np.ndarray] = {name: np.ascontiguousarray(getattr(cols, name)) for name in _ARRAY_FIELDS}
    arrays["alive"] = np.ascontiguousarray(alive)
    arrays["posting_keys"] = segment.keys
    arrays["posting_offsets"] = segment.offsets
    arrays["posting_rows"] = segment.rows
    arrays["posting_seg_lo"] = segment.seg_lo
    arrays["posting_seg_hi"] = segment.seg_hi
    arrays["ids"] = np.frombuffer("\n".join(cols.ids).encode("utf-8"), dtype=np.uint8)
    header: dict[str, Any] = {"format": FORMAT, "store_id": store_id, "seq": seq, "rows": len(cols), "arrays": []}
    for name, arr in arrays.items():
        header["arrays"].append({"name": name, "dtype": arr.dtype.str, "length": int(arr.shape[0]), "crc32": zlib.crc32(_bytes_of(arr))})
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(header) + b"\n")
        for arr in arrays.values():
            f.write(_bytes_of(arr))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path.stat().st_size


def snapshot_seq(path: Path) -> int:
    """Return the change-feed position a snapshot file claims (-1 if none or unreadable), without verifying it."""
    try:
        with open(path, "rb") as f:
            header = orjson.loads(f.readline())
        return int(header["seq"]) if header.get("format") == FORMAT else -1
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return -1


def read_snapshot(path: Path, store_id: str, max_seq: int) -> tuple[int, TripColumns, np.ndarray, PostingSegment]:
    """Return (seq, columns, alive, postings) from a verified snapshot, or raise :class:`SnapshotError`."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise SnapshotError("no snapshot") from None
    with f:
        try:
            header = orjson.loads(f.readline())
        except orjson.JSONDecodeError:
            raise SnapshotError("unreadable header") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise SnapshotError("unknown format")
        if header.get("store_id") != store_id:
            raise SnapshotError("snapshot of another store")
        seq = int(header["seq"])
        if seq > max_seq:
            raise SnapshotError(f"snapshot is ahead of the store (snapshot seq {seq}, store {max_seq})")
        arrays: dict[str, np.ndarray] = {}
        for spec in header["arrays"]:
            dtype = np.dtype(spec["dtype"])
            arr = np.empty(spec["length"], dtype=dtype)
            view = _bytes_of(arr)
            if f.readinto(view) != len(view):
                raise SnapshotError(f"torn snapshot: {spec['name']} is cut short")
            if zlib.crc32(view) != spec["crc32"]:
                raise SnapshotError(f"checksum mismatch in {spec['name']}")
            arrays[spec["name"]] = arr
        if f.read(1):
            raise SnapshotError("trailing bytes after the last array")
    raw_ids = arrays.pop("ids").tobytes().decode("utf-8")
    ids = raw_ids.split("\n") if raw_ids else []
    if len(ids) != header["rows"]:
        raise SnapshotError("id count does not match the row count")
    segment = PostingSegment(*(arrays.pop(f"posting_{name}") for name in ("keys", "offsets", "rows", "seg_lo", "seg_hi")))
    alive = arrays.pop("alive")
    cols = TripColumns(ids=ids, **arrays)  # type: ignore[arg-type]
    return seq, cols, alive, segment


def _bytes_of(arr: np.ndarray) -> memoryview:
    """Return the bytes of a contiguous array, without a copy (writable when the array is)."""
    return memoryview(arr).cast("B")  # type: ignore[arg-type]  # numpy arrays are buffers; its stubs do not say so
