# SPDX-License-Identifier: MIT
"""Prophesee '%' header values that no decoder can use are refused at their line, with the
byte offset, instead of overflowing, disabling the range check or picking a decoder
silently (EVT 2.0 vs 3.0)."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from pysg.events import EventFileError
from pysg.io.evt import GEOMETRY_MAX, T0_MAX, read_evt, read_prophesee_header

# one EVT 2.0 CD event: TIME_HIGH 0 then CD_ON at x=3, y=5, t=7 (type 1 << 28)
EVT2_BODY = struct.pack("<II", 0x8 << 28, (1 << 28) | (7 << 22) | (3 << 11) | 5)


def write(tmp_path, header: str, body: bytes = EVT2_BODY):
    path = tmp_path / "f.raw"
    path.write_bytes(header.encode("ascii") + body)
    return path


def test_plain_header_reads(tmp_path):
    ev = read_evt(write(tmp_path, "% evt 2.0\n% geometry 640x480\n% t0 1000\n% end\n"))
    assert ev.size == 1 and (int(ev["x"][0]), int(ev["y"][0]), int(ev["t"][0])) == (3, 5, 1007)


@pytest.mark.parametrize("line, what", [
    (f"% t0 {T0_MAX + 1}\n", "t0"),
    (f"% t0 {2**63}\n", "t0"),
    (f"% t0 {2**64 + 5}\n", "t0"),
    ("% t0 -5\n", "t0"),
    ("% t0 1_000\n", "t0"),
    (f"% geometry {2**70}x480\n", "geometry width"),
    (f"% geometry 640x{GEOMETRY_MAX + 1}\n", "geometry height"),
    (f"% format EVT2;width={GEOMETRY_MAX + 1};height=10\n", "format width"),
])
def test_values_out_of_range_are_refused_at_their_line(tmp_path, line, what):
    header = "% evt 2.0\n" + line + "% end\n"
    with pytest.raises(EventFileError) as e:
        read_prophesee_header(write(tmp_path, header))
    assert f"byte offset {len('% evt 2.0' + chr(10))}" in str(e.value) and what in str(e.value)


def test_largest_accepted_t0_keeps_times_positive(tmp_path):
    ev = read_evt(write(tmp_path, f"% evt 2.0\n% t0 {T0_MAX}\n% end\n"))
    assert int(ev["t"][0]) == T0_MAX + 7 > 0


@pytest.mark.parametrize("header", ["% evt 2.0\n% format EVT3;height=720;width=1280\n% end\n",
                                    "% format EVT3\n% evt 2.0\n% end\n"])
def test_conflicting_formats_are_refused(tmp_path, header):
    with pytest.raises(EventFileError, match="ambiguous"):
        read_evt(write(tmp_path, header))


def test_repeating_the_same_format_is_fine(tmp_path):
    ev = read_evt(write(tmp_path, "% evt 3.0\n% format EVT3;height=720;width=1280\n% end\n", b""))
    assert ev.size == 0 and read_prophesee_header(tmp_path / "f.raw").width == 1280


@pytest.mark.parametrize("lines, size, source", [
    ("% plugin_name hal_plugin_gen3_fx3\n% system_ID 21\n", (640, 480), "plugin_name"),
    ("% plugin_name hal_plugin_imx636_evk4\n", (1280, 720), "plugin_name"),
    ("% system_ID 49\n", (1280, 720), "system_ID"),
    ("% geometry 304x240\n% plugin_name hal_plugin_gen3_fx3\n", (304, 240), "header"),
    ("% plugin_name some_future_plugin\n% system_ID 999\n", (None, None), None),
])
def test_size_from_the_named_camera_without_a_geometry_line(tmp_path, lines, size, source):
    head = read_prophesee_header(write(tmp_path, "% evt 2.0\n" + lines + "% end\n"))
    assert (head.width, head.height, head.geometry_source) == size + (source,)


def test_info_never_reports_an_unknown_size_for_a_file_with_events(tmp_path):
    from pysg.io import info

    got = info(write(tmp_path, "% evt 2.0\n% end\n"))  # nothing names the sensor
    assert (got["width"], got["height"], got["geometry_source"]) == (4, 6, "events")
    got = info(write(tmp_path, "% evt 2.0\n% plugin_name hal_plugin_gen3_fx3\n% end\n"))
    assert (got["width"], got["height"], got["geometry_source"]) == (640, 480, "file")
