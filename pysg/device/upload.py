# SPDX-License-Identifier: MIT
"""Uploads to a device: a model into its inactive slot (read back, then activated) and a
firmware image to the bootloader, both resumable across lost links (the device keeps the
received bytes in RAM; BEGIN answers the offset) and verified on the device (CRC-32 and
the runtime's own validation at END).

On a lossy link the chunks adapt: each DATA request is sent at most twice (a prompt
resend after the link's adaptive wait), and a chunk that does not get through is sent
again smaller under a new seq (the device answers ERR_OFFSET with the offset it holds when
the first one did arrive). The chunk size follows the link's estimated loss per byte
(`pysg.device.session.FrameSizer`, the rule every request of a session follows: reads and
streams too): a frame of n bytes survives with (1-p)^n, so the host aims at about 1/p
bytes per frame; a failed try halves it at once, and it grows back as frames get through.
An upload that moves no byte for `stall_timeout` s stops with UploadStalled (the active
model is untouched: uploads go to the inactive slot)."""
from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

from .link import HELLO_INTERVAL, LinkError
from .ops import Cap, Op, Status
from .protocol import DeviceError, ProtocolError
from .replies import UploadResult, VerifyError, _head, fw_version_text
from .session import RECONNECT_TIMEOUT, Progress, Session

__all__ = ["Uploads", "UPLOAD_RECONNECTS", "UploadStalled", "UploadStatus", "UPLOAD_STALL_TIMEOUT"]

UPLOAD_RECONNECTS = 20       # link losses one upload survives before giving up
FW_BOOT_TIMEOUT = 60.0       # s for the bootloader to copy an image and start it
OFFSET_JUMPS = 3             # ERR_OFFSET answers in a row before an upload gives up
ERASE_TIMEOUT = 5.0          # s a BEGIN may take to answer: it erases first (STM32F4: 1-2 s per 128 KB sector)
UPLOAD_STALL_TIMEOUT = 120.0 # s without one more byte accepted before an upload gives up
DATA_RETRIES = 1             # prompt resends of one DATA frame before it is sent again smaller
_DATA_REPLY = 8              # payload bytes of a DATA reply (status, next offset): it can be hit too


class UploadStalled(LinkError):
    """No byte of an upload got through for the stall timeout: the link loses too much."""


@dataclass
class UploadStatus:
    """Where an upload is: what the progress line shows (`line()`)."""
    done: int = 0
    total: int = 0
    retries: int = 0          # DATA tries that got no reply (resent or sent again smaller)
    frame: int = 0            # payload bytes per DATA request now
    seconds: float = 0.0

    @property
    def bytes_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return f"{self.retries} retries, {self.frame} B frames, {self.bytes_per_s / 1000:.1f} kB/s"


class Uploads(Session):
    """What changes a device's flash: models and firmware."""

    stall_timeout: float = UPLOAD_STALL_TIMEOUT

    def _upload(self, data: bytes, ops: tuple[Op, Op, Op], progress: Progress | None) -> tuple[UploadResult, bytes]:
        """BEGIN (resume offset) -> DATA chunks -> END, surviving link losses; returns the
        result and END's reply."""
        begin, data_op, end = ops
        size, crc = len(data), zlib.crc32(data)
        t0 = last_moved = time.monotonic()
        result = UploadResult(slot=-1, generation=0, size=size, crc=crc)
        link = self._link()
        sizer = self.sizer
        status = self.upload_status = UploadStatus(total=size, frame=sizer.size)
        first = True
        losses = restarts = 0
        best = 0

        def report(done: int) -> None:
            nonlocal last_moved, best
            if done > best:
                best, last_moved = done, time.monotonic()
            status.done, status.frame, status.seconds = done, sizer.size, time.monotonic() - t0
            if progress:
                progress(done, size)

        def check_stall(what: str) -> None:
            idle = time.monotonic() - last_moved
            if idle > self.stall_timeout:
                raise UploadStalled(
                    f"upload to {self.url} stalled at byte {status.done} of {size}: nothing got through for "
                    f"{idle:.0f} s ({status.retries} retries, frames down to {sizer.size} B; {what}). The link "
                    f"loses too much: check the cable, lower the baud rate, or move the device closer; the "
                    f"active model is unchanged")

        while True:
            try:
                r = self._cmd(begin, struct.pack("<II", size, crc), interval=max(ERASE_TIMEOUT, self.reply_timeout))
                h = _head(begin, r)
                offset = h["resume_offset"]
                if offset > size:
                    raise ProtocolError(f"{begin.name} reply: resume_offset (offset 1) {offset} is beyond the "
                                        f"{size} bytes of the upload")
                if begin == Op.MODEL_BEGIN:
                    result.slot = h["slot"]
                if first:
                    result.resumed_from, first = offset, False
                jumps = 0
                fail_since = None
                give_up = (1 + self.retries) * (self.reply_timeout + (link.max_payload + 64) / self.bytes_per_s)
                while offset < size:
                    report(offset)
                    part = data[offset: offset + sizer.size - 4]   # the frame: offset (u32) + part
                    link = self._link()
                    before = link.counters.resends
                    try:
                        r = link.command(data_op, struct.pack("<I", offset) + part, retries=DATA_RETRIES,
                                         patience=0)
                    except DeviceError as e:  # the device holds another count of bytes: go there
                        # forward: an earlier try arrived and only its reply was lost (on a lossy
                        # link that can happen many times in a row); only other jumps are counted
                        jumps += 1 if e.expected_offset is None or e.expected_offset <= offset else 0
                        if e.status != Status.ERR_OFFSET or e.expected_offset is None \
                                or e.expected_offset > size or jumps > OFFSET_JUMPS:
                            raise
                        offset = e.expected_offset
                        fail_since = None
                        continue
                    except LinkError:
                        status.retries += link.counters.resends - before + 1
                        sizer.record(len(part) + 4, _DATA_REPLY, False)
                        now = time.monotonic()
                        fail_since = fail_since or now
                        check_stall("no reply to any DATA frame")
                        if now - fail_since > give_up:  # as long as a request waits: the link may be gone
                            raise
                        continue
                    fail_since = None
                    if link.counters.resends > before:  # the first try was lost
                        status.retries += link.counters.resends - before
                        sizer.record(len(part) + 4, _DATA_REPLY, False)
                    sizer.record(len(part) + 4, _DATA_REPLY, True)
                    nxt = _head(data_op, r)["next_offset"]
                    if nxt != offset + len(part):
                        raise ProtocolError(f"{data_op.name} of {len(part)} bytes at offset {offset}: the device "
                                            f"answers next offset {nxt}")
                    offset, jumps = nxt, 0
                report(size)
                end_reply = self._cmd(end)
                break
            except UploadStalled:
                raise
            except LinkError:
                losses += 1
                if losses > UPLOAD_RECONNECTS:
                    raise
                check_stall("the link was lost and reopened")
                try:
                    self.reconnect(max(1.0, min(RECONNECT_TIMEOUT,
                                                self.stall_timeout - (time.monotonic() - last_moved))))
                except LinkError as e:
                    check_stall(f"the device no longer answers HELLO: {e}")
                    raise
            except DeviceError as e:  # the device reset meanwhile (its upload state is in RAM)
                restarts += 1
                if e.status != Status.ERR_STATE or e.op not in (data_op, end) or restarts > 2:
                    raise
        result.reconnects = losses
        result.retries = status.retries
        result.frame_bytes = sizer.size
        result.seconds = time.monotonic() - t0
        return result, end_reply

    def _read_back(self, slot: int, size: int) -> bytes:
        """MODEL_READ of a slot's first `size` bytes in chunks that adapt to the link as
        the upload's do (a read changes nothing, so a lost one is simply asked again,
        smaller, under a new seq); UploadStalled when nothing comes back for the stall
        timeout."""
        sizer, status = self.sizer, self.upload_status
        out = bytearray()
        last = time.monotonic()
        while len(out) < size:
            link = self._link()
            want = min(sizer.size - 1, 0xFFFF, size - len(out))   # the reply: status + want bytes
            before = link.counters.resends
            try:
                r = link.command(Op.MODEL_READ, struct.pack("<BIH", slot, len(out), want), reply_len=want + 1,
                                 retries=DATA_RETRIES, patience=0)
            except LinkError:
                status.retries += link.counters.resends - before + 1
                sizer.record(7, want + 1, False)
                idle = time.monotonic() - last
                if idle > self.stall_timeout:
                    raise UploadStalled(f"reading slot {slot} back from {self.url} stalled at byte {len(out)} of "
                                        f"{size}: nothing came back for {idle:.0f} s ({status.retries} retries): "
                                        f"check the cable or lower the baud rate, then flash again") from None
                continue
            if len(r) != want:
                raise ProtocolError(f"MODEL_READ of {want} bytes returned {len(r)}")
            if link.counters.resends > before:
                status.retries += link.counters.resends - before
                sizer.record(7, want + 1, False)
            sizer.record(7, want + 1, True)
            out += r
            last = time.monotonic()
        return bytes(out)

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
            back = self._read_back(result.slot, len(data))
            result.retries = self.upload_status.retries
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
