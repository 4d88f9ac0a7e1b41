# SPDX-License-Identifier: MIT
"""The `.sgm` int8 model file: its layout, validating loader, writer and `inspect`.

docs/FORMAT.md is the specification; this package is its executable form and is kept
in step with it:

* :mod:`.layout`: versions, sizes, limits, kinds, flags and the byte layout tables (the
  single source of truth that the loader, the writer, the generated C header and the
  tests use), the CRCs, :class:`SgmFormatError`;
* :mod:`.loader`: :func:`load_sgm` (header and labels, then the version's layer table),
  which never reads outside the buffer and reports the FIRST bad field as
  ``SgmFormatError(offset, field, what)``;
* :mod:`.sg`: version 1, SpikingGamma models; :mod:`.qnet`: version 2, imported int8
  networks (model classes, arena sizes, layer-table readers);
* :mod:`.writer`: :func:`encode_sgm` (any version), :func:`pack_sgm`;
* :mod:`.inspect`: :func:`inspect_sgm`; :mod:`.c_header`: runtime_c/include/sg_format.h.
"""
from __future__ import annotations

from .inspect import inspect_sgm
from .layout import (ALIGN, BLOB_DTYPES, BLOB_TABLE_OFFSET, BLOBS, COUNT_MAX, FLAG_DELAYS, FLAG_OUTPUT,
                     FORMAT_VERSION, FORMAT_VERSION_QNET, HEADER_FIELDS, HEADER_SIZE, KIND_CONV2D, KIND_DENSE,
                     KIND_NAMES, LABEL_SIZE, LAYER_ENTRY_SIZE, LAYER_FIELDS, LUT_MAX, MAGIC, MAX_BUCKETS, MAX_STAGES,
                     Q15_ONE, QBLOB_DTYPES, QBLOB_TABLE_OFFSET, QBLOBS, QKIND_CONV, QKIND_DEPTHWISE, QKIND_FC,
                     QKIND_INPUT, QKIND_NAMES, QKIND_POOL, QLAYER_FIELDS, THETA_MAX, VSHIFT_MAX, X_FRAC_BITS_RANGE,
                     SgmFormatError, field_offset, header_crc, payload_crc, read_fields, resign)
from .loader import LAYER_TABLES, load_sgm, read_sgm
from .qnet import SgmQLayer, SgmQModel, qaccumulator_bound, qarena_bytes_for
from .sg import SgmModel, SgmStage, arena_bytes_for, expected_blob_size
from .writer import ENCODERS, encode, encode_qmodel, encode_sgm, pack_sgm

__all__ = [
    # layout
    "ALIGN", "BLOB_DTYPES", "BLOB_TABLE_OFFSET", "BLOBS", "COUNT_MAX", "FLAG_DELAYS", "FLAG_OUTPUT",
    "FORMAT_VERSION", "FORMAT_VERSION_QNET", "HEADER_FIELDS", "HEADER_SIZE", "KIND_CONV2D", "KIND_DENSE",
    "KIND_NAMES", "LABEL_SIZE", "LAYER_ENTRY_SIZE", "LAYER_FIELDS", "LUT_MAX", "MAGIC", "MAX_BUCKETS", "MAX_STAGES",
    "Q15_ONE", "QBLOB_DTYPES", "QBLOB_TABLE_OFFSET", "QBLOBS", "QKIND_CONV", "QKIND_DEPTHWISE", "QKIND_FC",
    "QKIND_INPUT", "QKIND_NAMES", "QKIND_POOL", "QLAYER_FIELDS", "THETA_MAX", "VSHIFT_MAX", "X_FRAC_BITS_RANGE",
    "SgmFormatError", "field_offset", "header_crc", "payload_crc", "read_fields", "resign",
    # models
    "SgmModel", "SgmStage", "arena_bytes_for", "expected_blob_size",
    "SgmQLayer", "SgmQModel", "qaccumulator_bound", "qarena_bytes_for",
    # reading, writing, describing
    "LAYER_TABLES", "load_sgm", "read_sgm", "ENCODERS", "encode", "encode_qmodel", "encode_sgm", "pack_sgm",
    "inspect_sgm",
]
