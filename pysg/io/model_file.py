# SPDX-License-Identifier: MIT
"""Reading a model file in bounded memory: an .sgm file says its own size (header
``file_size``, a u32: no valid model reaches 4 GiB), so a file larger than that is refused
before it is read, a file larger than its header's file_size too, and a stream (a pipe,
``/dev/zero``) whose header does not announce a model after its first 64 bytes. A
regular file that is neither an .sgm model nor a zip (a float .npz) is refused at its
magic, after 64 bytes."""
from __future__ import annotations

import os
import stat
import struct

from pysg.events import EventFileError

__all__ = ["MAX_MODEL_BYTES", "read_model_bytes", "read_model_head"]

MAX_MODEL_BYTES = 0xFFFFFFFF   # the .sgm header's u32 file_size
_SGM_MAGIC = b"PSGM"
_ZIP_MAGIC = b"PK\x03\x04"   # a float .npz model
_HEADER = 64


def read_model_head(path: str | os.PathLike, n: int = 4) -> bytes:
    """The first `n` bytes of a model file (its magic), without reading further."""
    with open(path, "rb") as f:
        return f.read(n)


def read_model_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of a model file, refused (EventFileError naming the file and the byte
    offset) before they are read when no valid model can be that large: a regular file
    over MAX_MODEL_BYTES, or a non-regular file (pipe, device) that does not start with
    an .sgm header; such a stream is read up to the ``file_size`` its header announces,
    plus one byte to see that it ends there."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        regular = stat.S_ISREG(st.st_mode)
        if regular and st.st_size > MAX_MODEL_BYTES:
            raise EventFileError(path, "byte offset 0",
                                 f"{st.st_size} bytes: larger than any valid model ({MAX_MODEL_BYTES} bytes at "
                                 "most, the .sgm header's u32 file_size); give an .sgm or .npz model file")
        head = f.read(_HEADER)
        if head[:4] != _SGM_MAGIC or len(head) < 16:
            if regular and head[:4] == _ZIP_MAGIC:
                return head + f.read()      # a float .npz: numpy reads it (bounded by the size check)
            if regular and len(head) >= 4 and head[:4] != _SGM_MAGIC:
                raise EventFileError(path, "byte offset 0 (magic)",
                                     f"{head[:4]!r}: neither an .sgm model ({_SGM_MAGIC!r}) nor a float .npz "
                                     "(a zip); give a model file")
            if regular:
                return head                 # shorter than a header: the loader says so
            raise EventFileError(path, "byte offset 0",
                                 f"not a regular file and no .sgm header (starts with {head[:8]!r}); give a model file")
        size = struct.unpack_from("<I", head, 12)[0]
        if regular:
            if st.st_size > size:           # refused unread: only the header's file_size bytes can be a model
                raise EventFileError(path, f"byte offset {size}",
                                     f"{st.st_size} bytes, more than the header's file_size {size}; "
                                     "give one model file")
            return head + f.read()          # at most file_size bytes; the loader checks the rest
        data = head + f.read(max(0, size - len(head)) + 1)
        if len(data) > size:
            raise EventFileError(path, f"byte offset {size}",
                                 f"more bytes than the header's file_size {size}; give one model file")
        return data
