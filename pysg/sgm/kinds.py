# SPDX-License-Identifier: MIT
"""The registry of `.sgm` format kinds: one :class:`FormatKind` per ``format_version``.

A kind is ONE module of this package (version 1: :mod:`.sg`, version 2: :mod:`.qnet`)
that owns everything about its bytes: its layer-entry table and constants, its header
rules, its layer-table reader, its encoder, its ``inspect`` description and its macros
in the generated C header; it ends with ``register_format(FormatKind(...))``, and
``pysg/sgm/__init__.py`` imports it (one line: the registration). The shared loader,
writer, inspect and C header (:mod:`.loader`, :mod:`.writer`, :mod:`.inspect`,
:mod:`.c_header`) keep only what every version shares and look kinds up here; nothing
else in the package asks which version a model is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NoReturn

__all__ = ["CConstants", "FormatKind", "FORMATS", "LAYER_TABLES", "ENCODERS", "register_format",
           "unregister_format", "format_of", "known_versions", "layer_constants"]

Constant = tuple[str, int, str]                # (C name, value, comment) of one macro
HeaderError = Callable[[str, str], NoReturn]   # err(header field, what): raises SgmFormatError


@dataclass(frozen=True)
class CConstants:
    """A kind's macros in runtime_c/include/sg_format.h. The header groups macros by
    section (versions, limits, layer kinds, flags, layer-entry offsets) and writes the
    kinds' part of each section in version order; the version macro is
    ``SG_FMT_VERSION_<NAME>`` with the comment ``version``."""
    version: str
    limits: tuple[Constant, ...] = ()
    kinds: tuple[Constant, ...] = ()
    flags: tuple[Constant, ...] = ()
    layer: tuple[Constant, ...] = ()


@dataclass(frozen=True)
class FormatKind:
    """One .sgm format version and everything that depends on it.

    The loader runs the shared header checks, then (where the version's rules begin,
    in the order of docs/FORMAT.md "Validation") ``min_stages <= n_stages <=
    MAX_STAGES`` and ``check_header(h, err)``, then the rest of the shared header and
    the labels, then ``read_layers(buf, h, labels, regions, arena_size)``: the layer
    table, the blobs and the header fields that depend on them (n_classes,
    arena_bytes); it returns a ``model_type`` and raises SgmFormatError at the first
    bad field. ``encode(model)`` is its inverse; ``inspect(model)`` the JSON-ready
    description of ``pysg inspect --json`` (with ``format_version``); ``summary(name,
    info)`` the text of ``pysg inspect`` from that description."""
    name: str                 # "sg", "qnet": also SG_FMT_VERSION_<NAME> in C and the engines' kind name
    version: int              # the header's format_version
    model_type: type          # what read_layers returns and encode takes
    min_stages: int           # layer-table entries at least
    check_header: Callable[[dict, HeaderError], None]
    read_layers: Callable[[bytes, dict, list, list, "int | None"], Any]
    encode: Callable[[Any], bytes]
    inspect: Callable[[Any], dict]
    summary: Callable[[str, dict], str]
    c: CConstants
    # channels of the event counts a step takes, from the header fields and the first
    # layer-table entry's bytes (what a host that reads only the file's head needs,
    # e.g. from a device); default: the header's in_c
    count_channels: Callable[[dict, bytes], int] = lambda h, entry: int(h["in_c"])


# format_version -> its kind; the two dicts below are views of it by version and by
# model class, kept in step by register_format / unregister_format
FORMATS: dict[int, FormatKind] = {}
LAYER_TABLES: dict[int, Callable[..., Any]] = {}
ENCODERS: dict[type, Callable[[Any], bytes]] = {}


def register_format(kind: FormatKind) -> FormatKind:
    """Add a kind (a kind module's last statement). A version or a model class
    registered twice by different kinds is an error."""
    old = FORMATS.get(kind.version)
    if old is not None and old != kind:
        raise ValueError(f".sgm format version {kind.version} is registered twice ({old.name!r}, {kind.name!r})")
    for other in FORMATS.values():
        if other.version != kind.version and (other.model_type is kind.model_type or other.name == kind.name):
            raise ValueError(f".sgm kind {kind.name!r} (version {kind.version}) reuses the model class or name "
                             f"of version {other.version} ({other.name!r})")
    FORMATS[kind.version] = kind
    LAYER_TABLES[kind.version] = kind.read_layers
    ENCODERS[kind.model_type] = kind.encode
    return kind


def unregister_format(version: int) -> None:
    """Remove a kind (tests that register a toy one)."""
    kind = FORMATS.pop(version)
    del LAYER_TABLES[version]
    del ENCODERS[kind.model_type]


def kinds() -> list[FormatKind]:
    """Every registered kind, in version order."""
    return [FORMATS[v] for v in sorted(FORMATS)]


def known_versions() -> str:
    """"1 and 2", "1, 2 and 3": the versions this build reads, for messages."""
    vs = [str(v) for v in sorted(FORMATS)]
    return " and ".join(vs) if len(vs) < 3 else ", ".join(vs[:-1]) + " and " + vs[-1]


def format_of(model: Any) -> FormatKind:
    """The kind of a parsed model (by its class, subclasses included)."""
    for t in type(model).__mro__:
        for kind in FORMATS.values():
            if kind.model_type is t:
                return kind
    raise TypeError(f"{type(model).__name__} is not an .sgm model "
                    f"(known: {', '.join(k.model_type.__name__ for k in kinds())})")


def layer_constants(version: int, fields: tuple, blobs: tuple = (), blob_table_offset: int = 0,
                    note: str = "") -> tuple[Constant, ...]:
    """The layer-entry macros of a version: SG_L<v>_BLOB_TABLE, SG_L<v>_N_BLOBS and
    SG_L<v>_BLOB_<NAME> (blob indices) if it has blobs, then SG_L<v>_<FIELD> (field
    offsets) of ``fields`` ((name, offset, struct code) rows); ``note`` is added to
    the offsets' comment."""
    p = f"SG_L{version}"
    out: list[Constant] = []
    if blobs:
        table = f"version {version} layer entry: the blob table (offset, size) x N"
        out += [(f"{p}_BLOB_TABLE", blob_table_offset, table), (f"{p}_N_BLOBS", len(blobs), "")]
        out += [(f"{p}_BLOB_{b.upper()}", i, "blob index" if i == 0 else "") for i, b in enumerate(blobs)]
    comment = f"version {version} layer-entry field offsets" + (f" ({note})" if note else "")
    out += [(f"{p}_{name.upper()}", off, comment if i == 0 else "") for i, (name, off, _) in enumerate(fields)]
    return tuple(out)
