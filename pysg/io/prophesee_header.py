# SPDX-License-Identifier: MIT
"""The ``%`` text header of Prophesee files (EVT 2.0, EVT 3.0 ``.raw`` and DAT ``.dat``).

Lines of ``% `` + text ending in ``\\n`` before the binary data: ``% evt 3.0``,
``% format EVT3;height=720;width=1280``, ``% geometry 1280x720``, ``% Width`` /
``% Height`` in DAT files, an optional ``% end`` line, and ``% t0 N`` written by
faery when it subtracted the first timestamp. Without a geometry line the sensor size
comes from the camera the header names (``% plugin_name``, ``% system_ID``).
The decoders of :mod:`pysg.io.evt` read the data that follows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import BinaryIO

from pysg.events import EventFileError

__all__ = ["EvtHeader", "read_prophesee_header", "camera_geometry", "GEOMETRY_MAX", "T0_MAX"]

_MAX_HEADER_LINE = 64 * 1024
_MAX_HEADER_BYTES = 1 << 20


@dataclass
class EvtHeader:
    """The ``% `` text header of a Prophesee file.

    ``format`` is ``"evt2"``, ``"evt3"``, ``"dat"`` or None (header says
    nothing); ``width``/``height`` come from a geometry line or, without one, from the
    camera the header names (``geometry_source`` says which), None when neither; ``t0`` is the offset
    faery subtracted (0 when absent); ``data_offset`` is the first byte after
    the header.
    """
    lines: list[str] = field(default_factory=list)
    format: str | None = None
    width: int | None = None
    height: int | None = None
    t0: int = 0
    data_offset: int = 0
    keys: dict[str, str] = field(default_factory=dict)
    geometry_source: str | None = None  # "header", "plugin_name", "system_ID" or None


# Header values a decoder can use: coordinates are uint16 in EVENT_DTYPE, and a '% t0'
# offset plus any decoded time (an EVT 3.0 file would need 2^62 us, 146,000 years, to
# come near) must still fit int64.
GEOMETRY_MAX = 65535
T0_MAX = 1 << 62


def _parse_int(path: str, where: str, text: str, what: str, limit: int) -> int:
    text = text.strip()
    if not text.isdigit() or len(text) > 20:  # no sign, no '_' or spaces that int() accepts
        raise EventFileError(path, where, f"{what}: {text!r} is not a non-negative integer")
    value = int(text)
    if value > limit:
        raise EventFileError(path, where, f"{what}: {value} is larger than {limit}")
    return value


def _set_format(head: EvtHeader, path: str, where: str, fmt: str, seen: dict[str, str]) -> None:
    """A header line naming the format; a second line naming another one is refused
    rather than letting the later line silently win."""
    if head.format is not None and head.format != fmt and head.format in seen:
        raise EventFileError(path, where, f"header names {fmt.upper()} here but {head.format.upper()} at "
                                          f"{seen[head.format]}: which decoder applies is ambiguous")
    head.format = fmt
    seen.setdefault(fmt, where)


def _parse_header(f: BinaryIO, path: str) -> EvtHeader:
    """Read the ``%`` header lines from ``f`` (positioned at 0)."""
    head = EvtHeader()
    offset = 0
    seen: dict[str, str] = {}  # format -> where the header first named it
    while True:
        f.seek(offset)
        peek = f.read(2)
        if len(peek) < 2 or peek[:1] != b"%" or peek[1:2] not in (b" ", b"\n", b"\r"):
            break
        f.seek(offset)
        line = f.readline(_MAX_HEADER_LINE)
        where = f"byte offset {offset}"
        if not line.endswith(b"\n"):
            raise EventFileError(path, where, "truncated or overlong '%' header line")
        try:
            text = line.rstrip(b"\r\n").decode("ascii")
        except UnicodeDecodeError:
            break  # binary data that happens to start with '% '
        offset += len(line)
        if offset > _MAX_HEADER_BYTES:
            raise EventFileError(path, where, f"'%' header longer than {_MAX_HEADER_BYTES} bytes")
        head.lines.append(text)
        body = text[1:].strip()
        if body.lower() == "end":
            break
        key, _, value = body.partition(" ")
        low = key.lower()
        head.keys[key] = value
        if low == "evt":
            version = value.strip()
            if version.startswith("3"):
                _set_format(head, path, where, "evt3", seen)
            elif version.startswith("2"):
                _set_format(head, path, where, "evt2", seen)
            else:
                raise EventFileError(path, where, f"unsupported '% evt {version}'")
        elif low == "format":
            parts = value.split(";")
            name = parts[0].strip().upper()
            if name in ("EVT3", "EVT3.0"):
                _set_format(head, path, where, "evt3", seen)
            elif name in ("EVT2", "EVT2.0", "EVT21", "EVT2.1"):
                if name in ("EVT21", "EVT2.1"):
                    raise EventFileError(path, where, "EVT 2.1 is not supported")
                _set_format(head, path, where, "evt2", seen)
            for part in parts[1:]:
                k, _, v = part.partition("=")
                if k.strip().lower() == "width":
                    head.width = _parse_int(path, where, v, "format width", GEOMETRY_MAX)
                elif k.strip().lower() == "height":
                    head.height = _parse_int(path, where, v, "format height", GEOMETRY_MAX)
        elif low == "geometry":
            w, sep, h = value.partition("x")
            if not sep:
                raise EventFileError(path, where, f"'% geometry {value}' is not WIDTHxHEIGHT")
            head.width = _parse_int(path, where, w, "geometry width", GEOMETRY_MAX)
            head.height = _parse_int(path, where, h, "geometry height", GEOMETRY_MAX)
        elif low == "width":
            head.width = _parse_int(path, where, value, "Width", GEOMETRY_MAX)
        elif low == "height":
            head.height = _parse_int(path, where, value, "Height", GEOMETRY_MAX)
        elif low == "t0":
            head.t0 = _parse_int(path, where, value, "t0", T0_MAX)
        elif low == "version" and head.format is None:
            head.format = "dat"
        elif low == "data" and "cd events" in value.lower() and head.format is None:
            head.format = "dat"
    head.data_offset = offset
    if head.width is None and head.height is None:
        size, source = camera_geometry(head.keys)
        if size is not None:
            (head.width, head.height), head.geometry_source = size, source
    elif head.width is not None and head.height is not None:
        head.geometry_source = "header"
    return head


# Sensor sizes by the Metavision HAL plugin a recording names ('% plugin_name'), for files
# whose header has no geometry line (Gen3 EVT 2.0 files). Matched as substrings, in order.
_PLUGIN_SIZES = (("imx636", (1280, 720)), ("imx646", (1280, 720)), ("gen41", (1280, 720)), ("gen4", (1280, 720)),
                 ("genx320", (320, 320)), ("imx8", (320, 320)), ("gen31", (640, 480)), ("gen3", (640, 480)))
# '% system_ID' values seen in real recordings with a known sensor (a Gen3 EVT 2.0 file
# and an IMX636 EVT 3.0 file in faery's test data); others give no size.
_SYSTEM_ID_SIZES = {"21": (640, 480), "49": (1280, 720)}


def camera_geometry(keys: dict[str, str]) -> tuple[tuple[int, int] | None, str | None]:
    """(width, height) and where it came from ("plugin_name" or "system_ID"), from the
    camera a header names; (None, None) when it names none we know."""
    plugin = keys.get("plugin_name", "").strip().lower()
    for needle, size in _PLUGIN_SIZES:
        if plugin and needle in plugin:
            return size, "plugin_name"
    size = _SYSTEM_ID_SIZES.get(keys.get("system_ID", "").strip())
    return (size, "system_ID") if size is not None else (None, None)


def read_prophesee_header(path: str | os.PathLike) -> EvtHeader:
    """Parse the ``%`` header of an EVT 2.0 / EVT 3.0 / DAT file."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        return _parse_header(f, path)
