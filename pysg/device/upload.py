# SPDX-License-Identifier: MIT
"""Uploads to a device: a model into its inactive slot (read back, then activated) and a
firmware image to the bootloader, both resumable across lost links (the device keeps the
received bytes in RAM; BEGIN answers the offset) and verified on the device (CRC-32 and
the runtime's own validation at END)."""
from __future__ import annotations

import struct
import time
import zlib

from .link import HELLO_INTERVAL, LinkError
from .ops import Cap, Op, Status
from .protocol import DeviceError, ProtocolError
from .replies import UploadResult, VerifyError, _head, fw_version_text
from .session import Progress, Session

__all__ = ["Uploads", "UPLOAD_RECONNECTS"]

UPLOAD_RECONNECTS = 20       # link losses one upload survives before giving up
FW_BOOT_TIMEOUT = 60.0       # s for the bootloader to copy an image and start it
OFFSET_JUMPS = 3             # ERR_OFFSET answers in a row before an upload gives up
ERASE_TIMEOUT = 5.0          # s a BEGIN may take to answer: it erases first (STM32F4: 1-2 s per 128 KB sector)


class Uploads(Session):
    """What changes a device's flash: models and firmware."""

    def _upload(self, data: bytes, ops: tuple[Op, Op, Op], progress: Progress | None) -> tuple[UploadResult, bytes]:
        """BEGIN (resume offset) -> DATA chunks -> END, surviving link losses; returns the
        result and END's reply."""
        begin, data_op, end = ops
        size, crc = len(data), zlib.crc32(data)
        t0 = time.monotonic()
        result = UploadResult(slot=-1, generation=0, size=size, crc=crc)
        first = True
        losses = restarts = 0
        while True:
            try:
                r = self._cmd(begin, struct.pack("<II", size, crc), interval=max(ERASE_TIMEOUT, self.reply_timeout))
                h = _head(begin, r)
                offset = h["resume_offset"]
                if begin == Op.MODEL_BEGIN:
                    result.slot = h["slot"]
                if first:
                    result.resumed_from, first = offset, False
                jumps = 0
                while offset < size:
                    if progress:
                        progress(offset, size)
                    part = data[offset: offset + self._budget - 4]
                    try:
                        r = self._cmd(data_op, struct.pack("<I", offset) + part)
                    except DeviceError as e:  # the device holds another count of bytes: go there
                        jumps += 1
                        if e.status != Status.ERR_OFFSET or e.expected_offset is None \
                                or e.expected_offset > size or jumps > OFFSET_JUMPS:
                            raise
                        offset = e.expected_offset
                        continue
                    nxt = _head(data_op, r)["next_offset"]
                    if nxt != offset + len(part):
                        raise ProtocolError(f"{data_op.name} of {len(part)} bytes at offset {offset}: the device "
                                            f"answers next offset {nxt}")
                    offset, jumps = nxt, 0
                if progress:
                    progress(size, size)
                end_reply = self._cmd(end)
                break
            except LinkError:
                losses += 1
                if losses > UPLOAD_RECONNECTS:
                    raise
                self.reconnect()
            except DeviceError as e:  # the device reset meanwhile (its upload state is in RAM)
                restarts += 1
                if e.status != Status.ERR_STATE or e.op not in (data_op, end) or restarts > 2:
                    raise
        result.reconnects = losses
        result.seconds = time.monotonic() - t0
        return result, end_reply

    def upload_model(self, data: bytes, *, progress: Progress | None = None, verify: bool = True,
                     activate: bool = True) -> UploadResult:
        """Upload an .sgm file into the inactive slot, read it back, then activate it.
        `progress(done_bytes, total_bytes)`. DeviceError (ERR_MODEL with the byte offset
        of the first bad field, ERR_TOO_BIG, ...) when the device refuses it."""
        data = bytes(data)
        if not data:
            raise ValueError("upload_model: empty model")
        self._need(Cap.MODEL, "store models")
        result, r = self._upload(data, (Op.MODEL_BEGIN, Op.MODEL_DATA, Op.MODEL_END), progress)
        result.slot = _head(Op.MODEL_END, r)["slot"]
        if result.slot not in (0, 1):
            raise ProtocolError(f"MODEL_END reply names slot {result.slot}; a device has slots 0 and 1")
        if verify:
            back = self.read_model(result.slot, size=len(data))
            if back != data:
                i = next(i for i, (a, b) in enumerate(zip(back, data)) if a != b)
                raise VerifyError(f"slot {result.slot} reads back differently from byte {i} on: "
                                  f"upload again; if it persists the device's flash is failing")
        if activate:
            r = self._cmd(Op.MODEL_ACTIVATE)
            h = _head(Op.MODEL_ACTIVATE, r)
            slot, result.generation = h["slot"], h["generation"]
            if slot != result.slot:
                raise ProtocolError(f"MODEL_ACTIVATE activated slot {slot}, the upload went to slot {result.slot}")
        self._stream = None
        return result

    def upload_firmware(self, image: bytes, *, progress: Progress | None = None,
                        boot_timeout: float = FW_BOOT_TIMEOUT) -> UploadResult:
        """Send a firmware image (256-byte header + binary) to the bootloader's secondary
        region, activate it, wait for the device to boot it and check its version."""
        from .image import check_image

        image = bytes(image)
        self._need(Cap.FIRMWARE, "update its firmware (no bootloader)")
        # ImageError (a ValueError naming the field) before a byte is sent: wrong file or board
        head = check_image(image, board=self.hello_info.name if self.hello_info else None)
        if len(image) != 256 + head.size:
            raise ValueError(f"image file of {len(image)} bytes, its header says {256 + head.size}")
        version = head.version
        result, r = self._upload(image, (Op.FW_BEGIN, Op.FW_DATA, Op.FW_END), progress)
        result.version = _head(Op.FW_END, r)["version"]
        if result.version != version:
            raise VerifyError(f"FW_END reports version {fw_version_text(result.version)}, "
                              f"the image header says {fw_version_text(version)}")
        try:
            self._cmd(Op.FW_ACTIVATE)
        except LinkError:
            pass  # the reply was lost and the device went on into the bootloader: the version decides
        except DeviceError as e:  # a resend the rebooted firmware executed afresh (its upload state is gone)
            if e.status != Status.ERR_STATE:
                raise
        time.sleep(HELLO_INTERVAL)
        hello = self.reconnect(boot_timeout)
        if hello.fw_version != version:
            raise VerifyError(f"the device runs firmware {fw_version_text(hello.fw_version)} after the update, "
                              f"not {fw_version_text(version)}: the bootloader kept (or restored) the old image")
        return result
