# SPDX-License-Identifier: MIT
"""Prophesee raw files: EVT 2.0, EVT 3.0 (``.raw``) and DAT (``.dat``).

All three start with a text header of ``% ``-prefixed lines ending in ``\\n``
(``% evt 3.0``, ``% format EVT3;height=720;width=1280``, ``% geometry 1280x720``,
``% Width``/``% Height`` in DAT files, an optional ``% end`` line, and ``% t0 N``
written by faery when it subtracted the first timestamp), parsed by
:mod:`pysg.io.prophesee_header`. The binary data follows the last header line.

EVT 2.0: little-endian 32-bit words, type in bits 28..31::

    0x0 CD_OFF / 0x1 CD_ON   bits 22..27 time low 6 bits, 11..21 x, 0..10 y
    0x8 EVT_TIME_HIGH        bits 0..27 = t >> 6
    0xA EXT_TRIGGER, 0xE OTHERS, 0xF CONTINUED (skipped)

  ``t = time_high << 6 | low``: 34 bits, unwrapped (+2**34) whenever
  TIME_HIGH goes backwards.

EVT 3.0: little-endian 16-bit words, type in bits 12..15, stateful::

    0x0 EVT_ADDR_Y    bits 0..10 y
    0x2 EVT_ADDR_X    bit 11 polarity, bits 0..10 x: one event at (x, y)
    0x3 VECT_BASE_X   bit 11 polarity, bits 0..10 base x
    0x4 VECT_12       bits 0..11: an event at base x + i for each set bit i,
                      then base x += 12
    0x5 VECT_8        bits 0..7: same, base x += 8
    0x6 EVT_TIME_LOW  bits 0..11 = t bits 0..11
    0x8 EVT_TIME_HIGH bits 0..11 = t bits 12..23 (and t bits 0..11 = 0)
    0xA EXT_TRIGGER, 0x7/0xF CONTINUED, 0xE OTHERS (skipped)

  24-bit time, wrapping every 2**24 µs (16.78 s): unwrapped whenever TIME_HIGH
  goes backwards. Events before the first ADDR_Y / TIME_HIGH / TIME_LOW (and
  vectors before the first VECT_BASE_X) have no defined value and are dropped,
  as Prophesee's decoders do.

DAT: after the header, 1 byte event type (0x0C = CD) and 1 byte event size
(8), then 8-byte events: uint32 t, uint32 data with x in bits 0..13, y in
14..27, polarity in 28..31. ``t`` is unwrapped (+2**32) when it goes backwards.

Decoding is vectorised: the EVT 3.0 state (last y, time, base x, polarity) is
a forward fill of the index of the last word of each kind
(``np.maximum.accumulate``), vectors are expanded with ``np.unpackbits``.

The EVT 3.0 writer is :mod:`pysg.io.evt3_writer`; it and the header parser are
re-exported here (``from pysg.io.evt import write_evt3, read_prophesee_header``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import numpy as np

from pysg import _native
from pysg.events import EVENT_DTYPE, EventFileError
from pysg.io.evt3_writer import write_evt3
from pysg.io.prophesee_header import (  # noqa: F401 - GEOMETRY_MAX, T0_MAX, camera_geometry: public here too
    GEOMETRY_MAX,
    T0_MAX,
    EvtHeader,
    _parse_header,
    camera_geometry,
    read_prophesee_header,
)

__all__ = ["read_evt", "iter_evt", "write_evt3", "read_dat", "iter_dat", "read_prophesee_header", "EvtHeader"]

EVT3_TIME_WRAP = 1 << 24
EVT2_TIME_WRAP = 1 << 34
DAT_TIME_WRAP = 1 << 32
_DAT_CD = 0x0C
_DAT_EVENT_SIZE = 8

# The C decoders of runtime_c/src/host/sg_decode.c, used when the extension is built (pysg._native's
# policy for code with a numpy twin); the numpy decoders below stay the reference (and the
# fallback). They write EVENT_DTYPE records directly: 13 packed bytes x u2, y u2, t i8, p u1.
_ffi, _lib = _native.optional("sg_evt3_decode", "sg_evt2_decode", "sg_aedat31_decode_polarity")
if _lib is not None and (EVENT_DTYPE.itemsize != _lib.SG_EVENT_RECORD_SIZE
                         or [EVENT_DTYPE.fields[k][1] for k in ("x", "y", "t", "p")] != [0, 2, 4, 12]):
    raise _native.NativeUnavailableError(f"EVENT_DTYPE layout differs from sg_decode.h's record: {_native.FIX}")


# --------------------------------------------------------------------------- #
# EVT 2.0
# --------------------------------------------------------------------------- #
@dataclass
class _Evt2State:
    time_high: int = -1      # last TIME_HIGH (unwrapped, << 6 not applied), -1 = none yet
    raw_high: int = -1       # last raw 28-bit value, for wrap detection


def _decode_evt2(words: np.ndarray, state: _Evt2State, t0: int) -> np.ndarray:
    kind = words >> np.uint32(28)
    is_high = kind == 8
    high_idx = np.flatnonzero(is_high)
    raw = (words[high_idx] & np.uint32(0x0FFFFFFF)).astype(np.int64)
    # Unwrap: every decrease of the raw 28-bit value is one wrap.
    prev = np.concatenate(([state.raw_high if state.raw_high >= 0 else raw[0] if raw.size else 0], raw))
    loops = np.cumsum(np.diff(prev) < 0)
    base_loops = state.time_high >> 28 if state.time_high >= 0 else 0
    full = raw + ((loops + base_loops) << 28)
    # Forward fill: index into [initial, full...] of the last TIME_HIGH.
    last = np.zeros(words.size, dtype=np.int64)
    last[high_idx] = np.arange(1, high_idx.size + 1)
    np.maximum.accumulate(last, out=last)
    highs = np.concatenate(([state.time_high], full))
    if high_idx.size:
        state.time_high = int(full[-1])
        state.raw_high = int(raw[-1])
    cd = (kind <= 1)
    th = highs[last]
    cd &= th >= 0
    w = words[cd]
    out = np.empty(w.size, dtype=EVENT_DTYPE)
    out["x"] = (w >> np.uint32(11)) & np.uint32(0x7FF)
    out["y"] = w & np.uint32(0x7FF)
    out["p"] = (w >> np.uint32(28)).astype(np.uint8)
    out["t"] = (th[cd] << 6) | ((w >> np.uint32(22)) & np.uint32(0x3F)).astype(np.int64)
    if t0:
        out["t"] += t0
    return out


# --------------------------------------------------------------------------- #
# EVT 3.0
# --------------------------------------------------------------------------- #
@dataclass
class _Evt3State:
    y: int = -1
    time_high: int = -1      # unwrapped (includes loops << 12)
    raw_high: int = -1
    time_low: int = -1
    base_x: int = -1         # already advanced past earlier vectors
    pol: int = 0


def _last(positions: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each row, 1 + index into ``positions`` (sorted word indices of one
    word kind) of the last one at or before the row; 0 = none yet (the state
    carried over from the previous chunk)."""
    return np.searchsorted(positions, rows, side="right")


def _decode_evt3(words: np.ndarray, state: _Evt3State, t0: int) -> np.ndarray:
    n = words.size
    kind = words >> np.uint16(12)
    payload = words & np.uint16(0x0FFF)

    y_pos = np.flatnonzero(kind == 0x0)
    # TIME_HIGH also resets the low 12 bits (a TIME_HIGH not followed by a
    # TIME_LOW means t = high << 12, as faery and OpenEB decode).
    tl_pos = np.flatnonzero((kind == 0x6) | (kind == 0x8))
    th_pos = np.flatnonzero(kind == 0x8)
    base_pos = np.flatnonzero(kind == 0x3)
    single = kind == 0x2
    v12 = kind == 0x4
    v8 = kind == 0x5
    vect_pos = np.flatnonzero(v12 | v8)
    rows = np.flatnonzero(single | v12 | v8)

    y_val = np.concatenate(([state.y], (payload[y_pos] & 0x7FF).astype(np.int64)))
    tl_val = np.concatenate(([state.time_low], np.where(kind[tl_pos] == 0x6, payload[tl_pos], 0).astype(np.int64)))
    # TIME_HIGH unwrapped: every decrease of the 12-bit value is one wrap.
    raw = payload[th_pos].astype(np.int64)
    first = state.raw_high if state.raw_high >= 0 else (int(raw[0]) if raw.size else 0)
    loops = np.cumsum(np.diff(np.concatenate(([first], raw))) < 0)
    base_loops = state.time_high >> 12 if state.time_high >= 0 else 0
    th_val = np.concatenate(([state.time_high], raw + ((loops + base_loops) << 12)))
    # VECT_BASE_X: base x and polarity; each vector advances base x by 12 or 8.
    bp = payload[base_pos].astype(np.int64)
    bx_val = np.concatenate(([state.base_x], bp & 0x7FF))
    pol_val = np.concatenate(([state.pol], bp >> 11))
    inc = np.where(v12[vect_pos], 12, 8)
    cs = np.concatenate(([0], np.cumsum(inc)))       # advance before vector j: cs[j]
    cs_base = np.concatenate(([0], cs[np.searchsorted(vect_pos, base_pos)]))

    # New state for the next chunk.
    if n:
        last = np.array([n - 1])
        state.y = int(y_val[_last(y_pos, last)[0]])
        state.time_low = int(tl_val[_last(tl_pos, last)[0]])
        state.time_high = int(th_val[-1])
        if raw.size:
            state.raw_high = int(raw[-1])
        b = int(_last(base_pos, last)[0])
        state.base_x = int(bx_val[b] + cs[-1] - cs_base[b]) if bx_val[b] >= 0 else -1
        state.pol = int(pol_val[b])

    if rows.size == 0:
        return np.empty(0, dtype=EVENT_DTYPE)
    yi = y_val[_last(y_pos, rows)]
    tli = tl_val[_last(tl_pos, rows)]
    thi = th_val[_last(th_pos, rows)]
    bi = _last(base_pos, rows)
    k = kind[rows]
    pl = payload[rows]
    is_single = k == 0x2
    # Vector base x of each row (meaningless for single rows).
    vj = np.searchsorted(vect_pos, rows)  # index of this row among vectors
    vx = bx_val[bi] + cs[np.minimum(vj, cs.size - 1)] - cs_base[bi]
    keep = (yi >= 0) & (tli >= 0) & (thi >= 0) & (is_single | (bx_val[bi] >= 0))
    if not keep.all():
        rows, yi, tli, thi, bi, k, pl, is_single, vx = (
            a[keep] for a in (rows, yi, tli, thi, bi, k, pl, is_single, vx))
    bits = np.where(is_single, np.uint16(1), np.where(k == 0x4, pl, pl & np.uint16(0xFF))).astype("<u2")
    mat = np.unpackbits(bits.view(np.uint8).reshape(-1, 2), axis=1, bitorder="little")[:, :12]
    r, c = np.nonzero(mat)
    s = is_single[r]
    out = np.empty(r.size, dtype=EVENT_DTYPE)
    out["x"] = np.where(s, pl[r] & np.uint16(0x7FF), vx[r] + c)
    out["y"] = yi[r]
    out["p"] = np.where(s, pl[r] >> np.uint16(11), pol_val[bi[r]])
    out["t"] = ((thi[r] << 12) | tli[r]) + t0
    return out


# --------------------------------------------------------------------------- #
# C decoders (same results and state as _decode_evt2 / _decode_evt3)
# --------------------------------------------------------------------------- #
def _shrink(out: np.ndarray, k: int) -> np.ndarray:
    """``out[:k]`` without keeping the unused tail alive (in-place realloc)."""
    if k == out.size:
        return out
    try:
        out.resize((k,), refcheck=False)
        return out
    except ValueError:
        return out[:k].copy()


def _decode_into(words: np.ndarray, state: Any, t0: int, evt3: bool, out: np.ndarray,
                 k: int) -> tuple[np.ndarray, int]:
    """Decode ``words`` with sg_evt3_decode / sg_evt2_decode into ``out[k:]`` (grown,
    i.e. replaced by a larger copy, when it fills up), updating ``state``.
    Returns (out, k + number of events)."""
    names = ("y", "time_low", "time_high", "raw_high", "base_x", "pol") if evt3 else ("time_high", "raw_high")
    st = _ffi.new("sg_evt3_state *" if evt3 else "sg_evt2_state *", {n: getattr(state, n) for n in names})
    fn = _lib.sg_evt3_decode if evt3 else _lib.sg_evt2_decode
    per = 12 if evt3 else 1
    n = words.size
    counts = _ffi.new("size_t[2]")
    done = 0
    with _ffi.from_buffer("uint8_t[]", words) as src:
        while True:
            if out.size - k < per:
                grown = np.empty(out.size + min(per * (n - done) + per, max(out.size, per)), dtype=EVENT_DTYPE)
                grown[:k] = out[:k]
                out = grown
            with _ffi.from_buffer("uint8_t[]", out, require_writable=True) as dst:
                status = fn(st, src + done * words.itemsize, n - done, t0,
                            dst + k * _lib.SG_EVENT_RECORD_SIZE, out.size - k, counts, counts + 1)
            if status != 0:
                raise RuntimeError(f"sg_evt{3 if evt3 else 2}_decode: status {status}")
            done += counts[0]
            k += counts[1]
            if done >= n:
                break
    for name in names:
        setattr(state, name, int(getattr(st, name)))
    return out, k


def _decode_c(words: np.ndarray, state: Any, t0: int, evt3: bool) -> np.ndarray:
    """Same result and state update as ``_decode_evt3`` / ``_decode_evt2``, in C."""
    out, k = _decode_into(words, state, t0, evt3, np.empty(words.size + (12 if evt3 else 1), dtype=EVENT_DTYPE), 0)
    return _shrink(out, k)


# --------------------------------------------------------------------------- #
# Readers
# --------------------------------------------------------------------------- #
def _check_range(path: str, ev: np.ndarray, width: int | None, height: int | None, base: int,
                 word_index: np.ndarray | None = None, first: int = 0) -> None:
    """x/y must lie inside the header geometry (when known); ``ev`` starts at event
    ``first`` of the data starting at byte ``base``."""
    for name, limit in (("x", width), ("y", height)):
        if limit is None or ev.size == 0:
            continue
        bad = ev[name] >= limit
        if bad.any():
            i = int(np.argmax(bad))
            raise EventFileError(path, f"byte offset {base}",
                                 f"event {first + i} of the data starting here has {name}={int(ev[name][i])}, "
                                 f"outside the header's {width}x{height} geometry")


def iter_evt(path: str | os.PathLike, *, chunk_events: int = 1_000_000, format: str | None = None,
             add_t0: bool = True) -> Iterator[np.ndarray]:
    """Decode an EVT 2.0 / EVT 3.0 file in bounded memory, chunk by chunk.

    Args:
        path: the ``.raw`` file.
        chunk_events: words decoded per chunk (each chunk yields at most this
            many events for EVT 2.0; EVT 3.0 vectors can yield up to 12 per
            word, so a chunk reads ``chunk_events // 4`` words).
        format: ``"evt2"`` or ``"evt3"`` when the header does not say.
        add_t0: add the ``% t0`` offset that faery subtracts (``zero_t0``).

    Yields:
        EVENT_DTYPE arrays, in file order.
    """
    path = os.fspath(path)
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, (int, np.integer)) or chunk_events < 1:
        raise ValueError(f"iter_evt: chunk_events must be a positive integer, got {chunk_events!r}")
    yield from _iter_evt(path, chunk_events, format, add_t0, _lib is not None)


def _iter_evt(path: str, chunk_events: int, format: str | None, add_t0: bool, use_c: bool) -> Iterator[np.ndarray]:
    state: Any = None
    for fmt, head, t0, pos, words in _evt_word_chunks(path, chunk_events, format, add_t0):
        if state is None:
            state = _Evt2State() if fmt == "evt2" else _Evt3State()
        if use_c:
            ev = _decode_c(words, state, t0, fmt == "evt3")
        else:
            ev = _decode_evt2(words, state, t0) if fmt == "evt2" else _decode_evt3(words, state, t0)
        _check_range(path, ev, head.width, head.height, pos)
        if ev.size:
            yield ev


def _evt_word_chunks(path: str, chunk_events: int, format: str | None,
                     add_t0: bool) -> Iterator[tuple[str, EvtHeader, int, int, np.ndarray]]:
    """The words of an EVT file chunk by chunk, as iter_evt decodes them:
    (format, header, t0 to add, byte offset of the chunk, words)."""
    with open(path, "rb") as f:
        head = _parse_header(f, path)
        fmt = head.format if head.format in ("evt2", "evt3") else format
        if fmt not in ("evt2", "evt3"):
            raise EventFileError(path, "byte offset 0",
                                 f"not an EVT 2.0/3.0 file (header format {head.format!r}); "
                                 "pass format='evt2' or 'evt3' for a headerless raw file")
        word = 4 if fmt == "evt2" else 2
        dtype = np.dtype("<u4" if fmt == "evt2" else "<u2")
        n_words = max(1, chunk_events if fmt == "evt2" else chunk_events // 4)
        t0 = head.t0 if add_t0 else 0
        f.seek(head.data_offset)
        pos = head.data_offset
        while True:
            data = f.read(n_words * word)
            if not data:
                return
            if len(data) % word:
                raise EventFileError(path, f"byte offset {pos + len(data) - len(data) % word}",
                                     f"file ends inside a {word * 8}-bit {fmt.upper()} word")
            yield fmt, head, t0, pos, np.frombuffer(data, dtype=dtype)
            pos += len(data)


def _read_evt_c(path: str, format: str | None, add_t0: bool) -> np.ndarray:
    """read_evt with the C decoders: iter_evt's chunks (same state, checks and errors)
    decoded straight into one output array instead of concatenated."""
    out = np.empty(0, dtype=EVENT_DTYPE)
    k = 0
    state: Any = None
    for fmt, head, t0, pos, words in _evt_word_chunks(path, 1 << 24, format, add_t0):
        if state is None:
            state = _Evt2State() if fmt == "evt2" else _Evt3State()
            # room for one event per 2 words (EVT 3.0) / per word (EVT 2.0); grown if needed
            total = (os.path.getsize(path) - head.data_offset) // words.itemsize
            out = np.empty(total // 2 + 12 if fmt == "evt3" else total + 1, dtype=EVENT_DTYPE)
        start = k
        out, k = _decode_into(words, state, t0, fmt == "evt3", out, k)
        _check_range(path, out[start:k], head.width, head.height, pos)
    return _shrink(out, k)


def read_evt(path: str | os.PathLike, *, format: str | None = None, add_t0: bool = True) -> np.ndarray:
    """Read every CD event of an EVT 2.0 or EVT 3.0 ``.raw`` file.

    Args:
        path: the file.
        format: ``"evt2"``/``"evt3"``, used only when the header does not say.
        add_t0: add back the ``% t0`` offset faery writes with ``zero_t0=True``.

    Returns:
        EVENT_DTYPE array in file order, ``t`` in µs (unwrapped), ``p`` 1 = ON.

    Raises:
        FileNotFoundError, EventFileError (with the byte offset).
    """
    if _lib is not None:
        return _read_evt_c(os.fspath(path), format, add_t0)
    return _concat(list(iter_evt(path, chunk_events=1 << 24, format=format, add_t0=add_t0)))


def _concat(chunks: list[np.ndarray]) -> np.ndarray:
    if not chunks:
        return np.empty(0, dtype=EVENT_DTYPE)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


_DAT_RECORD = np.dtype([("t", "<u4"), ("d", "<u4")])


def _dat_body(f: BinaryIO, path: str) -> tuple[EvtHeader, int, int] | None:
    """Check a DAT file's header and event type/size bytes: (header, byte offset of the
    first event, bytes of events), with ``f`` there; None for a file without events."""
    head = _parse_header(f, path)
    f.seek(head.data_offset)
    kind = f.read(2)
    if len(kind) < 2:
        if not kind:
            return None
        raise EventFileError(path, f"byte offset {head.data_offset}", "file ends inside the event type/size bytes")
    ev_type, ev_size = kind[0], kind[1]
    if ev_type != _DAT_CD:
        raise EventFileError(path, f"byte offset {head.data_offset}",
                             f"DAT event type 0x{ev_type:02x}, only CD events (0x0c) are supported")
    if ev_size != _DAT_EVENT_SIZE:
        raise EventFileError(path, f"byte offset {head.data_offset + 1}",
                             f"DAT event size {ev_size}, must be {_DAT_EVENT_SIZE}")
    base = head.data_offset + 2
    body = os.fstat(f.fileno()).st_size - base
    if body % _DAT_EVENT_SIZE:
        raise EventFileError(path, f"byte offset {base + body - body % _DAT_EVENT_SIZE}",
                             "file ends inside an 8-byte DAT event")
    return head, base, body


def _decode_dat(path: str, rec: np.ndarray, head: EvtHeader, base: int, first: int, t_last: list[int],
                t0: int) -> np.ndarray:
    """EVENT_DTYPE events of the DAT records ``rec`` (event ``first`` of the file on);
    ``t_last`` = [last raw t, wraps so far], carried across chunks (empty at the start)."""
    t = rec["t"].astype(np.int64)
    if t.size:
        w0 = (t_last[1] + int(int(t[0]) - t_last[0] < -(1 << 31))) if t_last else 0
        wraps = np.cumsum(np.diff(t) < -(1 << 31))
        if w0:
            wraps += w0
        t_last[:] = [int(t[-1]), int(wraps[-1]) if wraps.size else w0]
        if t_last[1]:  # (no pass at all for a file without wraps)
            t[0] += w0 << 32
            t[1:] += wraps << 32
    d = rec["d"]
    out = np.empty(rec.size, dtype=EVENT_DTYPE)
    out["x"] = d & np.uint32(0x3FFF)
    out["y"] = (d >> np.uint32(14)) & np.uint32(0x3FFF)
    p = d >> np.uint32(28)
    if p.size and int(p.max()) > 1:
        i = int(np.argmax(p > 1))
        raise EventFileError(path, f"byte offset {base + 8 * (first + i) + 4}",
                             f"event {first + i} has polarity {int(p[i])}")
    out["p"] = p
    out["t"] = t + t0
    _check_range(path, out, head.width, head.height, base, first=first)
    return out


def read_dat(path: str | os.PathLike, *, add_t0: bool = True) -> np.ndarray:
    """Read a Prophesee DAT (version 2) file of CD events.

    Returns EVENT_DTYPE in file order; ``t`` (uint32 in the file) is unwrapped
    by 2**32 whenever it goes backwards.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        got = _dat_body(f, path)
        if got is None:
            return np.empty(0, dtype=EVENT_DTYPE)
        head, base, _ = got
        data = f.read()
    rec = np.frombuffer(data, dtype=_DAT_RECORD)
    return _decode_dat(path, rec, head, base, 0, [], head.t0 if add_t0 else 0)


def iter_dat(path: str | os.PathLike, *, chunk_events: int = 1_000_000, add_t0: bool = True) -> Iterator[np.ndarray]:
    """``read_dat`` in bounded memory: ``chunk_events`` events read and decoded at a
    time, the timestamp unwrapping carried across chunks; the chunks concatenated equal
    ``read_dat``'s result. The header and file size are checked before the first chunk;
    a bad polarity or an event outside the geometry is raised at its chunk (with the
    message ``read_dat`` gives when the file has only that problem)."""
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, (int, np.integer)) or chunk_events < 1:
        raise ValueError(f"iter_dat: chunk_events must be a positive integer, got {chunk_events!r}")
    path = os.fspath(path)
    with open(path, "rb") as f:
        got = _dat_body(f, path)
        if got is None:
            return
        head, base, _ = got
        t_last: list[int] = []
        first = 0
        while True:
            data = f.read(int(chunk_events) * _DAT_EVENT_SIZE)
            if not data:
                return
            rec = np.frombuffer(data, dtype=_DAT_RECORD)
            yield _decode_dat(path, rec, head, base, first, t_last, head.t0 if add_t0 else 0)
            first += rec.size
