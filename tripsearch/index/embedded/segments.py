"""Immutable index segments on disk, mapped read-only by every process, and the manifest that names the current one.

A segment file holds the whole searchable index as of one position of the
store's change feed (``seq``): the trip columns, the trip ids, the corridor
postings, a sorted table of id hashes (to find the row of an id without
a dictionary in memory) and, optionally, the anchor entries (:mod:`.anchored`). Every process over a data directory maps the same
file read-only, so the operating system keeps one copy of its pages in the
page cache for all of them.

Layout of ``segments/seg-<generation>.tseg``::

    0       magic b"TSSEG01\\n", header length (u64), header CRC-32 (u32), 4 bytes zero
    24      the header, JSON: format, store id, seq, generation, rows, file size,
            anchors ({fingerprint, places}) when the anchor arrays are there,
            and for each array its name, dtype, offset, length and CRC-32
    65536   the arrays, each at a 64-byte boundary, in the header's order

The file is written under a temporary name, synced and renamed; then the
manifest (``index.manifest``, JSON) is written the same way and renamed over
the old one: that rename is the commit point, as Lucene's ``segments_N``.
Opening checks what costs nothing (magic, header checksum, store id, seq
not ahead of the store, the file's exact size, every array inside it);
:meth:`Segment.verify` checks every array's CRC-32 by reading the file (not
the mapping, so the check does not make the pages resident in the process).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, overload

import numpy as np
import orjson
from numpy.typing import NDArray

from ...core.columns import ROW_FIELDS, STOP_FIELDS, VERTEX_FIELDS, TripColumns
from ...occurrences import trip_id_of
from ..anchors import Anchors
from .anchored import MAX_PLACES, AnchorIndex, anchor_arrays, anchor_index
from .memory import IndexView, PostingSegment

__all__ = [
    "Segment",
    "SegmentError",
    "SegmentMissing",
    "IdColumn",
    "Manifest",
    "open_segment",
    "write_segment",
    "read_manifest",
    "write_manifest",
    "id_hashes",
    "segment_name",
    "FORMAT",
    "MANIFEST_FORMAT",
]

# The anchor entries are optional arrays (``anchor_*``, and ``anchors`` in the header says for which set), not
# a new format: a reader of an older version ignores arrays it does not know, so processes of two versions
# can share a data directory during an upgrade without rebuilding each other's segments.
FORMAT = "tripsearch-segment-1"
MANIFEST_FORMAT = "tripsearch-manifest-1"
MAGIC = b"TSSEG01\n"
_PREFIX = struct.Struct("<8sQI4x")
HEADER_BYTES = 65536
_ALIGN = 64
_CHUNK_ROWS = 262_144  # rows gathered at a time while writing, so a merge holds one chunk of each array, not a second index
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


class SegmentError(Exception):
    """A segment file or the manifest is missing, torn, corrupted or from another store."""


class SegmentMissing(SegmentError):
    """The segment file is not there (a merge in another process may just have replaced it)."""


def segment_name(generation: int) -> str:
    return f"seg-{generation:010d}.tseg"


# -- ids ----------------------------------------------------------------------


def encode_ids(ids: Sequence[str]) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Return ids as one UTF-8 blob and ``len(ids) + 1`` offsets into it."""
    raw = [tid.encode("utf-8") for tid in ids]
    lengths = np.fromiter((len(r) for r in raw), dtype=np.int64, count=len(raw))
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    return np.frombuffer(b"".join(raw), dtype=np.uint8), offsets


def _hash_blob(blob: NDArray[np.uint8], offsets: NDArray[np.int64]) -> NDArray[np.uint64]:
    """FNV-1a (64 bits) of each string of a blob, one byte position at a time across all strings."""
    lengths = np.diff(offsets)
    h = np.full(len(lengths), _FNV_OFFSET, dtype=np.uint64)
    for j in range(int(lengths.max()) if len(lengths) else 0):
        at = np.flatnonzero(lengths > j)
        h[at] = (h[at] ^ blob[offsets[at] + j].astype(np.uint64)) * _FNV_PRIME
    return h


def id_hashes(ids: Sequence[str]) -> NDArray[np.uint64]:
    """Return the 64-bit FNV-1a hash of each id's UTF-8 bytes.

    >>> int(id_hashes(["a"])[0]) == 0xAF63DC4C8601EC8C
    True
    """
    return _hash_blob(*encode_ids(ids))


class IdColumn(Sequence[str]):
    """Trip ids stored as one UTF-8 blob with offsets; an id is decoded only when asked for."""

    def __init__(self, blob: NDArray[np.uint8], offsets: NDArray[np.int64]) -> None:
        self.blob = blob
        self.offsets = offsets
        self._bytes = memoryview(blob)  # an id is decoded straight from a slice of it, without a copy

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @overload
    def __getitem__(self, pos: int) -> str: ...
    @overload
    def __getitem__(self, pos: slice) -> list[str]: ...
    def __getitem__(self, pos: int | slice) -> str | list[str]:
        if isinstance(pos, slice):
            return [self[i] for i in range(*pos.indices(len(self)))]
        if pos < 0:
            pos += len(self)
        if not 0 <= pos < len(self):
            raise IndexError(pos)
        return str(self._bytes[self.offsets[pos] : self.offsets[pos + 1]], "utf-8")


# -- reading ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Segment:
    """One mapped segment file: the index of every live trip as of ``seq``."""

    path: Path
    generation: int
    seq: int
    store_id: str
    size: int
    cols: TripColumns
    alive: NDArray[np.bool_]
    postings: PostingSegment
    hashes: NDArray[np.uint64]  # id hashes, sorted
    hash_rows: NDArray[np.int32]  # the row of each hash
    arrays: tuple[tuple[str, int, int, int], ...]  # (name, offset, bytes, crc32) as the header says
    pages: NDArray[np.uint8]  # the whole mapping, for populate()
    anchored: AnchorIndex | None = None  # the anchor entries, when the segment was written with them

    def __len__(self) -> int:
        return len(self.cols)

    def view(self) -> IndexView:
        return IndexView(self.cols, self.alive, (self.postings,) if len(self.postings) else (), self.seq)

    def trip_counts(self) -> tuple[int, int]:
        """Return (trips, occurrences) of the segment's live rows, counted once (the segment never changes)."""
        counts = self.__dict__.get("_trip_counts")
        if counts is None:
            counts = self.__dict__["_trip_counts"] = self.view().trip_counts()
        return counts

    def rows_of(self, ids: Sequence[str]) -> NDArray[np.int64]:
        """Return the rows of these trip ids that the segment holds: a punctual trip's row, every occurrence's of a regular trip."""
        if not len(ids) or not len(self.hashes):
            return np.zeros(0, dtype=np.int64)
        wanted = id_hashes(ids)
        lo = np.searchsorted(self.hashes, wanted, side="left")
        hi = np.searchsorted(self.hashes, wanted, side="right")
        out: list[int] = []
        for i in np.flatnonzero(hi > lo).tolist():
            for at in range(int(lo[i]), int(hi[i])):  # a regular trip, or a hash collision, lists more than one row
                row = int(self.hash_rows[at])
                if trip_id_of(self.cols.ids[row]) == ids[i]:
                    out.append(row)
        return np.array(out, dtype=np.int64)

    def populate(self, start: int = 0, stop: Callable[[], bool] | None = None) -> int:
        """Map the pages of the file from ``start`` on into this process, in chunks; return the offset reached.

        A search reaches rows all over the file, and a page it touches first
        in a process costs a fault even when the page cache holds it (or a
        read from disk when it does not): at 10,000,000 trips a new process's
        first searches ran four times slower than its later ones. This
        faults the pages in ahead (``MADV_POPULATE_READ``, Linux 5.14; pages
        not cached are read from disk) without holding the GIL, so searches
        go on meanwhile. ``stop`` is asked before each chunk: once it answers
        true the rest is left. The file's size is returned when every page
        is in; ``start`` when the kernel cannot do it.
        """
        madvise = _madvise()
        size = len(self.pages)
        if madvise is None:
            return start
        base = self.pages.ctypes.data
        at = start
        while at < size:
            if stop is not None and stop():
                break
            length = min(_POPULATE_CHUNK, size - at)
            if madvise(base + at, length, _MADV_POPULATE_READ) != 0:
                break  # an older kernel (EINVAL): pages come in as searches touch them
            at += length
        return at

    def verify(self, stop: Any = None) -> None:
        """Check every array against its CRC-32 by reading the file; raise :class:`SegmentError` on a mismatch.

        ``stop`` (an event) ends the check early when set.
        """
        try:
            with open(self.path, "rb", buffering=0) as f:
                for name, offset, nbytes, crc in self.arrays:
                    f.seek(offset)
                    running, left = 0, nbytes
                    while left:
                        if stop is not None and stop.is_set():
                            return
                        chunk = f.read(min(left, 8 << 20))
                        if not chunk:
                            raise SegmentError(f"{self.path.name}: {name} is cut short")
                        running = zlib.crc32(chunk, running)
                        left -= len(chunk)
                    if running != crc:
                        raise SegmentError(f"{self.path.name}: checksum mismatch in {name}")
        except OSError as exc:
            raise SegmentError(f"{self.path.name}: {exc}") from None


_MADV_POPULATE_READ = 22  # linux/mman.h
_POPULATE_CHUNK = 64 << 20  # a multiple of the page size; about 5 ms of populating when cached


@lru_cache(maxsize=1)
def _madvise() -> Any:
    """Return libc's ``madvise`` (it releases the GIL while it runs), or None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    call = ctypes.CDLL(None, use_errno=True).madvise
    call.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    call.restype = ctypes.c_int
    return call


def open_segment(path: Path, store_id: str, max_seq: int, verify: bool = False) -> Segment:
    """Map a segment file read-only after the checks that cost nothing (and every checksum with ``verify``)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise SegmentMissing(f"{path.name}: no such file") from None
    except OSError as exc:
        raise SegmentError(f"{path.name}: {exc.strerror or exc}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(HEADER_BYTES)
        if len(head) < _PREFIX.size:
            raise SegmentError(f"{path.name}: torn file ({size} bytes)")
        magic, length, crc = _PREFIX.unpack_from(head)
        if magic != MAGIC or length > HEADER_BYTES - _PREFIX.size:
            raise SegmentError(f"{path.name}: not a segment file")
        raw = head[_PREFIX.size : _PREFIX.size + length]
        if zlib.crc32(raw) != crc:
            raise SegmentError(f"{path.name}: header checksum mismatch")
        header = orjson.loads(raw)
        if header.get("format") != FORMAT:
            raise SegmentError(f"{path.name}: unknown format {header.get('format')!r}")
        if header["store_id"] != store_id:
            raise SegmentError(f"{path.name}: segment of another store")
        if header["seq"] > max_seq:
            raise SegmentError(f"{path.name}: segment is ahead of the store (segment seq {header['seq']}, store {max_seq})")
        if size != header["file_size"]:
            raise SegmentError(f"{path.name}: torn file ({size} bytes, the header says {header['file_size']})")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    arrays: dict[str, np.ndarray] = {}
    specs = []
    for spec in header["arrays"]:
        dtype = np.dtype(spec["dtype"])
        nbytes = dtype.itemsize * spec["length"]
        if spec["offset"] < HEADER_BYTES or spec["offset"] + nbytes > size:
            raise SegmentError(f"{path.name}: {spec['name']} lies outside the file")
        arrays[spec["name"]] = np.frombuffer(mapped, dtype=dtype, count=spec["length"], offset=spec["offset"])  # type: ignore[arg-type]
        specs.append((spec["name"], spec["offset"], nbytes, spec["crc32"]))
    missing = {*_ARRAY_NAMES} - arrays.keys()
    if missing:
        raise SegmentError(f"{path.name}: missing arrays {sorted(missing)}")
    rows = header["rows"]
    if any(len(arrays[n]) != rows for n in ROW_FIELDS + ["alive", "hashes", "hash_rows"]) or len(arrays["ids_offsets"]) != rows + 1:
        raise SegmentError(f"{path.name}: array lengths do not match the row count")
    cols = TripColumns(
        ids=IdColumn(arrays["ids_blob"], arrays["ids_offsets"]),
        **{name: arrays[name] for name in ROW_FIELDS + VERTEX_FIELDS + STOP_FIELDS + ["vert_start", "stop_start"]},
    )
    postings = PostingSegment(*(arrays[f"posting_{name}"] for name in ("keys", "offsets", "rows", "seg_lo", "seg_hi")))
    pages = np.frombuffer(mapped, dtype=np.uint8) if mapped is not None else np.zeros(0, dtype=np.uint8)  # type: ignore[arg-type]
    meta = header.get("anchors")
    anchored = anchor_index(arrays, meta["fingerprint"], rows, meta["places"]) if meta else None
    segment = Segment(path, header["generation"], header["seq"], store_id, size, cols, arrays["alive"], postings, arrays["hashes"], arrays["hash_rows"], tuple(specs), pages, anchored)
    if verify:
        segment.verify()
    return segment


_ARRAY_NAMES = (
    ROW_FIELDS
    + ["vert_start", "stop_start"]
    + VERTEX_FIELDS
    + STOP_FIELDS
    + ["ids_blob", "ids_offsets", "alive", "hashes", "hash_rows"]
    + [f"posting_{name}" for name in ("keys", "offsets", "rows", "seg_lo", "seg_hi")]
)


# -- writing ------------------------------------------------------------------


class _Writer:
    """Arrays streamed into a segment file in chunks, each with its running CRC-32."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "wb")
        self.f.truncate(HEADER_BYTES)
        self.f.seek(HEADER_BYTES)
        self.specs: list[dict[str, Any]] = []

    def add(self, name: str, dtype: np.dtype | type, chunks: Iterable[np.ndarray]) -> None:
        dtype = np.dtype(dtype)
        pos = self.f.tell()
        pad = -pos % _ALIGN
        self.f.write(b"\0" * pad)
        offset, crc, length = pos + pad, 0, 0
        for chunk in chunks:
            data = memoryview(np.ascontiguousarray(chunk, dtype=dtype)).cast("B")  # type: ignore[arg-type]
            self.f.write(data)
            crc = zlib.crc32(data, crc)
            length += len(chunk)
        self.specs.append({"name": name, "dtype": dtype.str, "offset": offset, "length": length, "crc32": crc})

    def finish(self, meta: dict[str, Any]) -> int:
        size = self.f.tell()
        header = orjson.dumps({"format": FORMAT, **meta, "file_size": size, "arrays": self.specs})
        if _PREFIX.size + len(header) > HEADER_BYTES:
            raise ValueError("segment header too large")
        self.f.seek(0)
        self.f.write(_PREFIX.pack(MAGIC, len(header), zlib.crc32(header)) + header)
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        return size

    def abort(self) -> None:
        self.f.close()
        self.path.unlink(missing_ok=True)


def _chunks(n: int, size: int = _CHUNK_ROWS) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def write_segment(
    directory: Path,
    generation: int,
    store_id: str,
    seq: int,
    base: Segment | None,
    base_rows: NDArray[np.int64],
    delta: IndexView,
    anchors: Anchors | None = None,
) -> Path:
    """Write a segment of ``base_rows`` (rising) of ``base`` followed by the live rows of ``delta``; return its path.

    Rows keep their order (the base's first), so the base's postings stay
    sorted when their rows are renumbered, and the delta's postings are
    merged into them without sorting the whole index again. With
    ``anchors``, the segment holds the anchor entries of every row
    (:mod:`.anchored`): the base's are copied when it has them for the same
    anchor set, the others computed.
    """
    parts: list[tuple[TripColumns, NDArray[np.int64]]] = []
    if base is not None:
        parts.append((base.cols, base_rows))
    delta_rows = np.flatnonzero(delta.alive).astype(np.int64)
    parts.append((delta.cols, delta_rows))
    n = sum(len(rows) for _, rows in parts)
    path = directory / segment_name(generation)
    tmp = directory / (path.name + f".tmp-{os.getpid()}")
    w = _Writer(tmp)
    try:
        for name in ROW_FIELDS:
            w.add(name, getattr(parts[-1][0], name).dtype, (getattr(c, name)[rows[s]] for c, rows in parts for s in _chunks(len(rows))))
        _add_ragged(w, parts, "vert_start", VERTEX_FIELDS)
        _add_ragged(w, parts, "stop_start", STOP_FIELDS)
        # ids: one blob, offsets like a ragged column
        id_lengths = []
        blobs: list[np.ndarray] = []
        for c, rows in parts:
            if isinstance(c.ids, IdColumn):
                id_lengths.append(c.ids.offsets[rows + 1] - c.ids.offsets[rows])
                mask = _item_mask(c.ids.offsets, rows)
                blobs.extend(c.ids.blob[s][mask[s]] for s in _chunks(len(mask), 16 * _CHUNK_ROWS))
            else:
                blob, offs = encode_ids([c.ids[i] for i in rows.tolist()])
                id_lengths.append(np.diff(offs))
                blobs.append(blob)
        w.add("ids_blob", np.uint8, blobs)
        del blobs
        lengths = np.concatenate(id_lengths) if id_lengths else np.zeros(0, dtype=np.int64)
        ids_offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        w.add("ids_offsets", np.int64, [ids_offsets])
        w.add("alive", np.bool_, [np.ones(n, dtype=np.bool_)])
        hashes, hash_rows = _id_table(parts, base)
        w.add("hashes", np.uint64, [hashes])
        w.add("hash_rows", np.int32, [hash_rows])
        del hashes, hash_rows
        postings = _merged_postings(base, base_rows, delta, delta_rows)
        for name in ("keys", "offsets", "rows", "seg_lo", "seg_hi"):
            w.add(f"posting_{name}", getattr(postings, name).dtype, [getattr(postings, name)])
        del postings
        meta: dict[str, Any] = {"store_id": store_id, "seq": seq, "generation": generation, "rows": n}
        if anchors is not None and len(anchors) <= MAX_PLACES:
            reuse = base.anchored if base is not None and base.anchored is not None and base.anchored.fingerprint == anchors.fingerprint else None
            for name, dtype, chunks in anchor_arrays(parts, reuse, base.cols if base is not None else None, anchors, _CHUNK_ROWS):
                w.add(name, dtype, chunks)
            meta["anchors"] = {"fingerprint": anchors.fingerprint, "places": len(anchors)}
        w.finish(meta)
    except BaseException:
        w.abort()
        raise
    os.replace(tmp, path)
    _fsync_dir(directory)
    return path


def _add_ragged(w: _Writer, parts: list[tuple[TripColumns, NDArray[np.int64]]], start_name: str, names: list[str]) -> None:
    counts = [getattr(c, start_name)[rows + 1] - getattr(c, start_name)[rows] for c, rows in parts]
    w.add(start_name, np.int64, [np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)])
    # the rows rise, so the items to keep are a mask over each part's items, in order (cheaper than gathering indices)
    masks = [_item_mask(getattr(c, start_name), rows) for c, rows in parts]
    for name in names:
        def gather(name: str = name) -> Iterator[np.ndarray]:
            for (c, _), mask in zip(parts, masks):
                values = getattr(c, name)
                for s in _chunks(len(values), 16 * _CHUNK_ROWS):
                    yield values[s][mask[s]]
        w.add(name, getattr(parts[-1][0], name).dtype, gather())


def _item_mask(starts: NDArray[np.int64], rows: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Return which items of a ragged column (``starts``: offsets) belong to ``rows``."""
    keep = np.zeros(len(starts) - 1, dtype=np.bool_)
    keep[rows] = True
    return np.repeat(keep, np.diff(starts))


def _id_table(parts: list[tuple[TripColumns, NDArray[np.int64]]], base: Segment | None) -> tuple[NDArray[np.uint64], NDArray[np.int32]]:
    """Return the sorted hashes of the new rows' trip ids (all of a regular trip's occurrences under one) and the row of each."""
    hashes: list[np.ndarray] = []
    rows_out: list[np.ndarray] = []
    first = 0
    for c, rows in parts:
        if base is not None and c is base.cols:
            renumber = np.full(len(base), -1, dtype=np.int64)
            renumber[rows] = np.arange(len(rows))
            new_rows = renumber[base.hash_rows]
            keep = new_rows >= 0
            hashes.append(base.hashes[keep])
            rows_out.append(new_rows[keep])
        else:
            hashes.append(id_hashes([trip_id_of(c.ids[i]) for i in rows.tolist()]))
            rows_out.append(np.arange(first, first + len(rows), dtype=np.int64))
        first += len(rows)
    h = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
    r = np.concatenate(rows_out) if rows_out else np.zeros(0, dtype=np.int64)
    order = np.argsort(h, kind="stable")
    return h[order], r[order].astype(np.int32)


def _merged_postings(base: Segment | None, base_rows: NDArray[np.int64], delta: IndexView, delta_rows: NDArray[np.int64]) -> PostingSegment:
    """Return the postings of the new rows: the base's renumbered (still sorted), the delta's merged in by key."""
    first = len(base_rows)
    renumber_delta = np.full(len(delta.alive), -1, dtype=np.int64)
    renumber_delta[delta_rows] = np.arange(first, first + len(delta_rows))
    merged = PostingSegment.merge(delta.segments, delta.alive)
    if base is None or not len(base.postings):
        # the renumbering keeps the order of the rows, so the entries stay sorted
        return PostingSegment(merged.keys, merged.offsets, renumber_delta[merged.rows].astype(np.int32), merged.seg_lo, merged.seg_hi)
    d_keys, d_rows, d_lo, d_hi = merged.expanded()
    d_rows = renumber_delta[d_rows]
    # Work per key on the segment's side, so no array of 8 bytes per posting entry is made for the merge.
    p = base.postings
    if len(base_rows) == len(base):  # nothing replaced: the segment's rows keep their numbers
        b_rows, b_lo, b_hi, b_counts = p.rows, p.seg_lo, p.seg_hi, np.diff(p.offsets)
    else:
        renumber = np.full(len(base), -1, dtype=np.int32)
        renumber[base_rows] = np.arange(len(base_rows), dtype=np.int32)
        b_rows = renumber[p.rows]
        keep = b_rows >= 0
        b_rows, b_lo, b_hi = b_rows[keep], p.seg_lo[keep], p.seg_hi[keep]
        b_counts = np.add.reduceat(keep, p.offsets[:-1], dtype=np.int64) if len(p.keys) else np.zeros(0, dtype=np.int64)
        del keep
    d_unique, d_counts = np.unique(d_keys, return_counts=True)
    # both sides sorted and distinct: insert the delta's new keys (np.union1d would sort the segment's keys again)
    at_key = np.searchsorted(p.keys, d_unique)
    known = at_key < len(p.keys)
    known[known] = p.keys[at_key[known]] == d_unique[known]
    keys = np.insert(p.keys, at_key[~known], d_unique[~known])
    counts = np.zeros(len(keys), dtype=np.int64)
    counts[np.searchsorted(keys, p.keys)] += b_counts
    counts[np.searchsorted(keys, d_unique)] += d_counts
    present = counts > 0  # a key whose every row was replaced goes
    keys, counts = keys[present], counts[present]
    # every delta row comes after every segment row: within a key, the delta's entries go last
    before = np.concatenate(([0], np.cumsum(b_counts)))
    at = before[np.searchsorted(p.keys, d_keys, side="right")]
    rows = np.insert(b_rows, at, d_rows.astype(np.int32))
    lo = np.insert(b_lo, at, d_lo.astype(np.uint16))
    hi = np.insert(b_hi, at, d_hi.astype(np.uint16))
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return PostingSegment(keys, offsets, rows, lo, hi)


# -- the manifest ---------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """The commit point: which segment file is current."""

    generation: int
    seq: int
    store_id: str
    segment: str  # file name under the segments directory


def read_manifest(path: Path) -> Manifest | None:
    """Return the manifest, None if there is none, or raise :class:`SegmentError` if it cannot be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SegmentError(f"{path.name}: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(raw)
        if doc.get("format") != MANIFEST_FORMAT:
            raise SegmentError(f"{path.name}: unknown format")
        return Manifest(int(doc["generation"]), int(doc["seq"]), str(doc["store_id"]), str(doc["segments"][0]))
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise SegmentError(f"{path.name}: unreadable manifest") from None


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically (temporary file, fsync, rename, fsync of the directory)."""
    doc = {"format": MANIFEST_FORMAT, "generation": manifest.generation, "seq": manifest.seq, "store_id": manifest.store_id, "segments": [manifest.segment]}
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(doc) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
