# SPDX-License-Identifier: MIT
"""The `.sgm` int8 model file: its layout, validating loader, writer and `inspect`.

docs/FORMAT.md is the specification; this package is its executable form and is kept
in step with it:

* :mod:`.layout`: what every version shares: the header table, sizes, the output flag,
  the CRCs, :class:`SgmFormatError`, the layer-entry reader's helpers;
* :mod:`.kinds`: the registry of format kinds, one per format_version
  (:func:`register_format`);
* one module per kind, which owns everything about its bytes (layer-entry table and
  constants, header rules, model classes, layer-table reader, encoder, ``inspect``
  description, C macros) and registers itself: :mod:`.sg` (version 1, SpikingGamma
  models), :mod:`.qnet` (version 2, imported int8 networks);
* :mod:`.loader`: :func:`load_sgm` (header and labels, then the version's layer table),
  which never reads outside the buffer and reports the FIRST bad field as
  ``SgmFormatError(offset, field, what)``;
* :mod:`.writer`: :func:`encode_sgm` (any kind), :func:`pack_sgm`;
* :mod:`.inspect`: :func:`inspect_sgm`, :func:`inspect_text`; :mod:`.c_header`:
  runtime_c/include/sg_format.h.

Adding a kind: its module, plus one import line below (the registration).
"""
from __future__ import annotations

from .inspect import inspect_sgm, inspect_text
from .kinds import ENCODERS, FORMATS, LAYER_TABLES, CConstants, FormatKind, format_of, register_format, \
    unregister_format
from .layout import (ALIGN, FLAG_OUTPUT, HEADER_FIELDS, HEADER_SIZE, LABEL_SIZE, LAYER_ENTRY_SIZE, MAGIC, MAX_STAGES,
                     EntryReader, SgmFormatError, field_offset, header_crc, payload_crc, read_fields, resign)
from .loader import load_sgm, read_sgm
from .writer import encode_sgm, pack_sgm

# the format kinds: importing a kind's module registers it (one line each)
from .sg import (BLOB_DTYPES, BLOB_TABLE_OFFSET, BLOBS, FLAG_DELAYS, FLAG_SPIKE_RING, FORMAT_VERSION,  # noqa: E402
                 KIND_CONV2D,
                 KIND_DENSE, KIND_NAMES, LAYER_FIELDS, MAX_BUCKETS, Q15_ONE, THETA_MAX, VSHIFT_MAX,
                 X_FRAC_BITS_RANGE, SgmModel, SgmStage, arena_bytes_for, encode, expected_blob_size,
                 ring_words, spike_ring_allowed)
from .qnet import (COUNT_MAX, FORMAT_VERSION_QNET, LUT_MAX, QBLOB_DTYPES, QBLOB_TABLE_OFFSET, QBLOBS,  # noqa: E402
                   QKIND_CONV, QKIND_DEPTHWISE, QKIND_FC, QKIND_INPUT, QKIND_NAMES, QKIND_POOL, QLAYER_FIELDS,
                   SgmQLayer, SgmQModel, encode_qmodel, qaccumulator_bound, qarena_bytes_for)
from .snn import FORMAT_VERSION_SNN, SgmSnnLayer, SgmSnnModel, encode_snn  # noqa: E402  version 3: spiking networks

__all__ = [
    # layout every version shares
    "ALIGN", "FLAG_OUTPUT", "HEADER_FIELDS", "HEADER_SIZE", "LABEL_SIZE", "LAYER_ENTRY_SIZE", "MAGIC", "MAX_STAGES",
    "EntryReader", "SgmFormatError", "field_offset", "header_crc", "payload_crc", "read_fields", "resign",
    # the kind registry
    "CConstants", "FormatKind", "FORMATS", "format_of", "register_format", "unregister_format",
    # version 1: SpikingGamma models
    "BLOB_DTYPES", "BLOB_TABLE_OFFSET", "BLOBS", "FLAG_DELAYS", "FLAG_SPIKE_RING", "FORMAT_VERSION", "KIND_CONV2D",
    "KIND_DENSE",
    "KIND_NAMES", "LAYER_FIELDS", "MAX_BUCKETS", "Q15_ONE", "THETA_MAX", "VSHIFT_MAX", "X_FRAC_BITS_RANGE",
    "SgmModel", "SgmStage", "arena_bytes_for", "encode", "expected_blob_size", "ring_words", "spike_ring_allowed",
    # version 2: imported int8 networks
    "COUNT_MAX", "FORMAT_VERSION_QNET", "LUT_MAX", "QBLOB_DTYPES", "QBLOB_TABLE_OFFSET", "QBLOBS", "QKIND_CONV",
    "QKIND_DEPTHWISE", "QKIND_FC", "QKIND_INPUT", "QKIND_NAMES", "QKIND_POOL", "QLAYER_FIELDS",
    "SgmQLayer", "SgmQModel", "encode_qmodel", "qaccumulator_bound", "qarena_bytes_for",
    # reading, writing, describing
    "LAYER_TABLES", "load_sgm", "read_sgm", "ENCODERS", "encode_sgm", "pack_sgm", "inspect_sgm", "inspect_text",
]
