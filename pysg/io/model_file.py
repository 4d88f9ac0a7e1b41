# SPDX-License-Identifier: MIT
"""Reading a model file in bounded memory: an .sgm file says its own size (header
``file_size``, a u32: no valid model reaches 4 GiB), so a file larger than that is refused
before it is read, and a stream (a pipe, ``/dev/zero``) whose header does not announce
a model after its first 64 bytes."""
from __future__ import annotations

import os
import stat
import struct

from pysg.events import EventFileError

__all__ = ["MAX_MODEL_BYTES", "read_model_bytes"]

MAX_MODEL_BYTES = 0xFFFFFFFF   # the .sgm header's u32 file_size
_SGM_MAGIC = b"PSGM"
_HEADER = 64


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
            if regular:
                return head + f.read()      # bounded by the size check; the loader names what is wrong
            raise EventFileError(path, "byte offset 0",
                                 f"not a regular file and no .sgm header (starts with {head[:8]!r}); give a model file")
        if regular:
            return head + f.read()          # at most MAX_MODEL_BYTES; the loader checks file_size
        size = struct.unpack_from("<I", head, 12)[0]
        data = head + f.read(max(0, size - len(head)) + 1)
        if len(data) > size:
            raise EventFileError(path, f"byte offset {size}",
                                 f"more bytes than the header's file_size {size}; give one model file")
        return data
