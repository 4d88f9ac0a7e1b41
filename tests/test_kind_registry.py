# SPDX-License-Identifier: MIT
"""A new .sgm kind is one module that registers itself: this test defines a toy format
kind (version 99, a one-field layer table) here alone, without editing any pysg file,
and shows that the shared loader, writer, inspect and generated C header pick it up,
and that unregistering it restores everything."""
from __future__ import annotations

import contextlib
import pathlib
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest

from pysg import sgm
from pysg.sgm import c_header
from pysg.sgm.kinds import layer_constants

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEADER = ROOT / "runtime_c" / "include" / "sg_format.h"
TOY_VERSION = 99
TOY_FIELDS = (("gain", 0, "H"),)  # (name, offset, struct code): the whole layer entry


# ------------------------------------------------------------------ the toy kind's module


@dataclass
class ToyModel:
    format_version: int
    dt_us: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    sensor_size: tuple[int, int]
    downsample: int
    labels: list[str]
    gains: list[int]
    file_bytes: int = 0


def _check_header(h: dict, err) -> None:
    if h["n_buckets"] != 0:
        err("n_buckets", f"n_buckets {h['n_buckets']} must be 0 in version {TOY_VERSION}")
    if h["in_c"] != 1:
        err("in_c", f"in_c {h['in_c']} must be 1")


def _read_layers(buf: bytes, h: dict, labels: list, regions: list, arena_size: int | None) -> ToyModel:
    gains = []
    for i in range(h["n_stages"]):
        entry = sgm.EntryReader(buf, i, h["layers_offset"] + i * sgm.LAYER_ENTRY_SIZE, TOY_FIELDS, regions)
        if entry.f["gain"] == 0:
            entry.err("gain", "gain must be >= 1")
        gains.append(entry.f["gain"])
    return ToyModel(h["format_version"], h["dt_us"], (h["in_c"], h["in_h"], h["in_w"]),
                    (h["sensor_w"], h["sensor_h"]), h["downsample"], labels, gains, len(buf))


def _encode(m: ToyModel) -> bytes:
    c, hh, w = m.input_shape
    header = {"format_version": TOY_VERSION, "arena_bytes": 0, "dt_us": m.dt_us, "n_buckets": 0, "in_c": c,
              "in_h": hh, "in_w": w, "sensor_w": m.sensor_size[0], "sensor_h": m.sensor_size[1],
              "downsample": m.downsample}
    return sgm.pack_sgm(header, m.labels, [({"gain": g}, {}) for g in m.gains], TOY_FIELDS, ())


def _inspect(m: ToyModel) -> dict:
    return {"format_version": m.format_version, "file_bytes": m.file_bytes, "labels": list(m.labels),
            "layers": [{"index": i, "gain": g} for i, g in enumerate(m.gains)]}


def _summary(name: str, info: dict) -> str:
    return f"{name}: .sgm version {info['format_version']} (toy), gains {[ly['gain'] for ly in info['layers']]}"


TOY = sgm.FormatKind(
    "toy", TOY_VERSION, ToyModel, min_stages=1, check_header=_check_header, read_layers=_read_layers,
    encode=_encode, inspect=_inspect, summary=_summary,
    c=sgm.CConstants(version="format_version of the toy kind (tests only)",
                     kinds=(("SG_TOYKIND_GAIN", 1, "toy layer kinds"),),
                     layer=layer_constants(TOY_VERSION, TOY_FIELDS)))

# ------------------------------------------------------------------ helpers


@contextlib.contextmanager
def registered_toy():
    assert TOY_VERSION not in sgm.FORMATS
    sgm.register_format(TOY)
    try:
        yield TOY
    finally:
        sgm.unregister_format(TOY_VERSION)


@pytest.fixture
def toy():
    with registered_toy() as kind:
        yield kind


def _model() -> ToyModel:
    return ToyModel(TOY_VERSION, 1000, (1, 4, 4), (8, 8), 2, ["a", "b"], [3, 7])


def _patched(data: bytes, name: str, value: int, table=sgm.HEADER_FIELDS, base: int = 0) -> bytes:
    """``data`` with field ``name`` of ``table`` (at byte ``base``) set to ``value``, re-signed."""
    buf = bytearray(data)
    struct.pack_into("<" + next(c for n, _, c in table if n == name), buf, base + sgm.field_offset(table, name),
                     value)
    return sgm.resign(buf)


def _rejects(data: bytes, offset: int, field: str, match: str) -> None:
    with pytest.raises(sgm.SgmFormatError, match=match) as e:
        sgm.load_sgm(data)
    assert (e.value.offset, e.value.field) == (offset, field)


def _hdr(name: str) -> int:
    return sgm.field_offset(sgm.HEADER_FIELDS, name)


def _v1_bytes() -> bytes:
    st = sgm.SgmStage(kind=sgm.KIND_DENSE, is_output=True, in_shape=(1, 2, 2), pool=1, syn_shape=(1, 2, 2),
                      out_shape=(2, 1, 1), kernel=1, stride=1, padding=0, max_delay=0, x_frac_bits=0,
                      weights=np.ones((2, 4), np.int8), bias=np.zeros(2, np.int32),
                      vweights=np.ones((2, 1), np.int16), vshift=np.zeros(2, np.uint8),
                      alpha=np.array([16384], np.uint16))
    return sgm.encode_sgm(sgm.SgmModel(sgm.FORMAT_VERSION, 1000, 1, (1, 2, 2), (2, 2), 1, ["x", "y"], [st],
                                       sgm.arena_bytes_for([st], 1), 0))

# ------------------------------------------------------------------ the tests


def test_load_and_encode_pick_up_a_registered_kind(toy):
    assert sgm.FORMATS[TOY_VERSION] is toy
    assert sgm.LAYER_TABLES[TOY_VERSION] is toy.read_layers and sgm.ENCODERS[ToyModel] is toy.encode
    data = sgm.encode_sgm(_model())
    m = sgm.load_sgm(data)
    assert isinstance(m, ToyModel) and sgm.format_of(m) is toy
    assert (m.gains, m.labels, m.input_shape, m.file_bytes) == ([3, 7], ["a", "b"], (1, 4, 4), len(data))
    assert sgm.encode_sgm(m) == data
    assert sgm.format_of(sgm.load_sgm(_v1_bytes())).version == sgm.FORMAT_VERSION  # the others untouched


def test_the_loader_runs_the_kinds_rules_where_the_version_rules_begin(toy):
    data = sgm.encode_sgm(_model())
    # n_stages against the kind's minimum, then the kind's header rules, in field order
    _rejects(_patched(data, "n_stages", 0), _hdr("n_stages"), "n_stages", r"outside \[1, 16\]")
    _rejects(_patched(data, "n_buckets", 1), _hdr("n_buckets"), "n_buckets", "must be 0 in version 99")
    _rejects(_patched(data, "in_c", 2), _hdr("in_c"), "in_c", "must be 1")
    # shared checks before them win, theirs win over the shared checks after them
    _rejects(_patched(_patched(data, "n_buckets", 1), "dt_us", 0), _hdr("dt_us"), "dt_us", "> 0")
    _rejects(_patched(_patched(data, "n_buckets", 1), "in_h", 0), _hdr("n_buckets"), "n_buckets", "must be 0")
    # the layer table is the kind's: entry 1's field, at its byte offset
    layers = int.from_bytes(data[_hdr("layers_offset"):_hdr("layers_offset") + 4], "little")
    base = layers + sgm.LAYER_ENTRY_SIZE
    _rejects(_patched(data, "gain", 0, TOY_FIELDS, base), base, "layers[1].gain", "gain must be >= 1")
    # an unknown version names every registered one
    _rejects(_patched(data, "format_version", 7), _hdr("format_version"), "format_version",
             r"format version 7 not supported \(this loader reads 1, 2, 3 and 99\)")


def test_inspect_picks_up_a_registered_kind(toy, tmp_path):
    data = sgm.encode_sgm(_model())
    (tmp_path / "toy.sgm").write_bytes(data)
    want = {"format_version": 99, "file_bytes": len(data), "labels": ["a", "b"],
            "layers": [{"index": 0, "gain": 3}, {"index": 1, "gain": 7}]}
    for src in (data, sgm.load_sgm(data), tmp_path / "toy.sgm", str(tmp_path / "toy.sgm")):
        assert sgm.inspect_sgm(src) == want
    assert sgm.inspect_text("toy.sgm", want) == "toy.sgm: .sgm version 99 (toy), gains [3, 7]"


def test_the_c_header_picks_up_a_registered_kind(toy, tmp_path):
    consts = c_header.constants()
    names = [n for n, _, _ in consts]
    values = {n: v for n, v, _ in consts}
    assert values["SG_FMT_VERSION_TOY"] == 99 and values["SG_TOYKIND_GAIN"] == 1 and values["SG_L99_GAIN"] == 0
    # each section: the shared macros, then the kinds in version order
    assert names.index("SG_FMT_VERSION_TOY") == names.index("SG_FMT_VERSION_SNN") + 1
    assert names.index("SG_TOYKIND_GAIN") == names.index("SG_NP_V_BIAS") + 1
    assert names[-1] == "SG_L99_GAIN" and len(set(names)) == len(names)
    text = c_header.c_header()
    assert "/**< format_version of the toy kind (tests only) */" in text and "/* version 99 layer-entry field" in text
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    (tmp_path / "sg_format.h").write_text(text)
    src = tmp_path / "toy.c"
    src.write_text('#include <stdio.h>\n#include "sg_format.h"\nint main(void)\n{\n'
                   '    printf("%u %u %u\\n", SG_FMT_VERSION_TOY, SG_TOYKIND_GAIN, SG_L99_GAIN);\n    return 0;\n}\n')
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{tmp_path}", str(src),
                    "-o", str(tmp_path / "toy")], check=True)
    out = subprocess.run([str(tmp_path / "toy")], check=True, capture_output=True, text=True).stdout.split()
    assert out == ["99", "1", "0"]


def test_registering_a_version_or_model_class_twice_is_refused(toy):
    sgm.register_format(toy)  # the same kind again: a no-op (a module imported twice)
    other = sgm.FormatKind("toy2", TOY_VERSION, dict, 1, _check_header, _read_layers, _encode, _inspect, _summary,
                           sgm.CConstants(version=""))
    with pytest.raises(ValueError, match="version 99 is registered twice"):
        sgm.register_format(other)
    with pytest.raises(ValueError, match="reuses the model class or name"):
        sgm.register_format(sgm.FormatKind("toy3", 98, ToyModel, 1, _check_header, _read_layers, _encode,
                                           _inspect, _summary, sgm.CConstants(version="")))
    assert sorted(sgm.FORMATS) == [sgm.FORMAT_VERSION, sgm.FORMAT_VERSION_QNET, sgm.FORMAT_VERSION_SNN, TOY_VERSION]


def test_unregistering_restores_the_registry_and_the_header():
    with registered_toy():
        data = sgm.encode_sgm(_model())
        assert "SG_FMT_VERSION_TOY" in c_header.c_header()
    assert sorted(sgm.FORMATS) == [sgm.FORMAT_VERSION, sgm.FORMAT_VERSION_QNET, sgm.FORMAT_VERSION_SNN]
    assert TOY_VERSION not in sgm.LAYER_TABLES and ToyModel not in sgm.ENCODERS
    assert HEADER.read_text() == c_header.c_header()
    _rejects(data, _hdr("format_version"), "format_version",
             r"format version 99 not supported \(this loader reads 1, 2 and 3\)")
    with pytest.raises(TypeError, match="no .sgm encoder for ToyModel"):
        sgm.encode_sgm(_model())
    with pytest.raises(TypeError, match="not an .sgm model"):
        sgm.format_of(_model())


# a kind's own modules and the registries; everything else asks the registries
KIND_FILES = {"sgm/sg.py", "sgm/qnet.py", "sgm/kinds.py", "sgm/__init__.py", "engines/sg_ref.py",
              "engines/qnet_ref.py", "engines/registry.py", "sgm/snn.py", "engines/snn.py"}


def test_no_format_version_test_outside_the_kinds_and_registries():
    """The Python side of the rule tests/test_runtime_c_unit.py checks in C."""
    patterns = [r"format_version[\"'\]]*\s*[!=]=", r"[!=]=\s*\S*format_version", r"\bFORMAT_VERSION_QNET\b",
                r"\bSG_FORMAT_VERSION", r"\bis_qnet\b"]
    bad = []
    for path in sorted((ROOT / "pysg").rglob("*.py")):
        rel = path.relative_to(ROOT / "pysg").as_posix()
        if rel in KIND_FILES:
            continue
        text = path.read_text(encoding="utf-8")
        bad += [(rel, p) for p in patterns if re.search(p, text)]
    assert not bad, bad
