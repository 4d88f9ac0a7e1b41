# SPDX-License-Identifier: MIT
"""Firmware image header (docs/PROTOCOL.md 3.5; its layout is pysg.device.ops.IMAGE_HEADER,
from which firmware/include/sg_proto_ops.h's SG_IMAGE_* are generated).

A firmware image is a 256-byte header followed by the application binary, which is
linked to run at ``load_addr`` (the board's app_primary address + 256). All fields are
little-endian::

    0  u32 magic "SGIM"        4  u16 header_size 256    6  u16 header_version 1
    8  u32 size (binary)      12  u32 CRC-32 of the binary
   16  u32 load_addr          20  u32 version (major << 16 | minor << 8 | patch)
   24  char[32] board name, NUL-padded; 56..251 zero; 252 u32 CRC-32 of bytes [0, 252)

Also the boot-control record the bootloader and the application share
(pysg.device.ops.BOOTCTL_RECORD), so host tools and tests can prepare flash.

    python -m pysg.device.image APP.bin --load-addr 0x20100 --version 0x000200 \\
        --board qemu-mps2-an386 -o APP.img
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import struct
import sys
import zlib
from collections.abc import Sequence

from .ops import BOOTCTL_MAGIC, BOOTCTL_RECORD, IMAGE_HEADER, IMAGE_HEADER_SIZE, IMAGE_HEADER_VERSION, IMAGE_MAGIC

_IMG = {f.name: f for f in IMAGE_HEADER.head}
BOARD_NAME_SIZE = _IMG["board"].size
OFF_MAGIC = _IMG["magic"].offset
OFF_HEADER_SIZE = _IMG["header_size"].offset
OFF_HEADER_VERSION = _IMG["header_version"].offset
OFF_SIZE = _IMG["size"].offset
OFF_CRC = _IMG["crc"].offset
OFF_LOAD_ADDR = _IMG["load_addr"].offset
OFF_VERSION = _IMG["version"].offset
OFF_BOARD = _IMG["board"].offset
OFF_RESERVED = _IMG["reserved"].offset
OFF_HEADER_CRC = _IMG["header_crc"].offset
BOOTCTL_RECORD_SIZE = BOOTCTL_RECORD.head_size
_BC = {f.name: f for f in BOOTCTL_RECORD.head}


def _pack(fields: dict, buf: bytearray, **values: int | bytes) -> None:
    """Write the named fields of a flash record (pysg.device.ops) into ``buf``."""
    for name, value in values.items():
        struct.pack_into("<" + fields[name].code, buf, fields[name].offset, value)


def _unpack(layout, data: bytes) -> dict:
    """Every field of a flash record at the start of ``data``, by name."""
    return dict(zip([f.name for f in layout.head], struct.unpack_from(layout.head_format, data)))


class ImageError(ValueError):
    """A firmware image or its header is invalid; ``field`` and ``offset`` say where."""

    def __init__(self, message: str, field: str, offset: int) -> None:
        super().__init__(f"{message} (field {field!r} at offset {offset})")
        self.field = field
        self.offset = offset


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """The parsed header of a firmware image."""

    size: int
    crc: int
    load_addr: int
    version: int
    board: str

    @property
    def version_str(self) -> str:
        return f"{self.version >> 16}.{(self.version >> 8) & 0xFF}.{self.version & 0xFF}"


def _u32(name: str, value: int) -> int:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{name} must fit in 32 bits, got {value}")
    return value


def make_header(binary: bytes, load_addr: int, version: int, board: str) -> bytes:
    """The 256-byte header for ``binary`` (linked to run at ``load_addr``)."""
    if not binary:
        raise ValueError("the application binary is empty")
    name = board.encode("ascii")
    if not name or len(name) >= BOARD_NAME_SIZE or b"\0" in name:
        raise ValueError(f"board name must be 1..{BOARD_NAME_SIZE - 1} ASCII characters, got {board!r}")
    head = bytearray(IMAGE_HEADER_SIZE)
    _pack(_IMG, head, magic=IMAGE_MAGIC, header_size=IMAGE_HEADER_SIZE, header_version=IMAGE_HEADER_VERSION,
          size=_u32("size", len(binary)), crc=zlib.crc32(binary), load_addr=_u32("load_addr", load_addr),
          version=_u32("version", version), board=name)
    _pack(_IMG, head, header_crc=zlib.crc32(bytes(head[:OFF_HEADER_CRC])))
    return bytes(head)


def make_image(binary: bytes, load_addr: int, version: int, board: str) -> bytes:
    """Header + binary: what FW_BEGIN/FW_DATA send and the bootloader copies."""
    return make_header(binary, load_addr, version, board) + binary


def parse_header(data: bytes) -> ImageHeader:
    """Parse and check the header at the start of ``data`` (the binary is not checked)."""
    if len(data) < IMAGE_HEADER_SIZE:
        raise ImageError(f"image is {len(data)} bytes, shorter than its {IMAGE_HEADER_SIZE}-byte header",
                         "header", 0)
    h = _unpack(IMAGE_HEADER, data)
    magic, hsize, hver, size = h["magic"], h["header_size"], h["header_version"], h["size"]
    if magic != IMAGE_MAGIC:
        raise ImageError(f"magic 0x{magic:08X} is not 0x{IMAGE_MAGIC:08X} ('SGIM')", "magic", OFF_MAGIC)
    if hsize != IMAGE_HEADER_SIZE:
        raise ImageError(f"header_size {hsize} is not {IMAGE_HEADER_SIZE}", "header_size", OFF_HEADER_SIZE)
    if hver != IMAGE_HEADER_VERSION:
        raise ImageError(f"header_version {hver} is not supported (expected {IMAGE_HEADER_VERSION})",
                         "header_version", OFF_HEADER_VERSION)
    hcrc = h["header_crc"]
    want = zlib.crc32(bytes(data[:OFF_HEADER_CRC]))
    if hcrc != want:
        raise ImageError(f"header CRC-32 0x{hcrc:08X} differs from the computed 0x{want:08X}",
                         "header_crc", OFF_HEADER_CRC)
    name, _, pad = h["board"].partition(b"\0")
    if any(pad):
        raise ImageError("board name is not NUL-padded", "board", OFF_BOARD)
    if any(h["reserved"]):
        raise ImageError(f"reserved bytes {OFF_RESERVED}..{OFF_HEADER_CRC - 1} are not zero", "reserved",
                         OFF_RESERVED)
    try:
        board = name.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ImageError(f"board name {name!r} is not ASCII", "board", OFF_BOARD) from exc
    if size == 0:
        raise ImageError("size is 0", "size", OFF_SIZE)
    return ImageHeader(size=size, crc=h["crc"], load_addr=h["load_addr"], version=h["version"], board=board)


def read_image_file(path: str | pathlib.Path) -> bytes:
    """A firmware image file, read in bounded memory: its header first, then exactly the
    binary the header announces; a file that is not an image, or longer or shorter than
    its header says, is refused before the rest is read (``/dev/zero``, a stray ELF)."""
    with open(path, "rb") as f:
        head_bytes = f.read(IMAGE_HEADER_SIZE)
        try:
            head = parse_header(head_bytes)
        except ImageError as exc:
            raise ImageError(f"{path}: not a firmware image: {exc}", exc.field, exc.offset) from None
        body = f.read(head.size + 1)  # one byte more: a file longer than its image is refused
    if len(body) != head.size:
        what = "longer than" if len(body) > head.size else "shorter than"
        raise ImageError(f"{path}: the file is {what} the {head.size}-byte binary its header announces",
                         "size", OFF_SIZE)
    return head_bytes + body


def check_image(data: bytes, *, load_addr: int | None = None, board: str | None = None,
                max_size: int | None = None) -> ImageHeader:
    """Check a whole image as the bootloader does (sg_image_check); returns its header.

    ``data`` may be longer than the image (a flash region): bytes beyond it are ignored.
    """
    head = parse_header(data)
    end = IMAGE_HEADER_SIZE + head.size
    if max_size is not None and end > max_size:
        raise ImageError(f"image of {end} bytes does not fit the {max_size}-byte region", "size", OFF_SIZE)
    if len(data) < end:
        raise ImageError(f"binary is {len(data) - IMAGE_HEADER_SIZE} bytes, the header says {head.size}",
                         "size", OFF_SIZE)
    crc = zlib.crc32(bytes(data[IMAGE_HEADER_SIZE:end]))
    if crc != head.crc:
        raise ImageError(f"binary CRC-32 0x{crc:08X} differs from the header's 0x{head.crc:08X}",
                         "crc", OFF_CRC)
    if load_addr is not None and head.load_addr != load_addr:
        raise ImageError(f"load_addr 0x{head.load_addr:08X} is not the board's 0x{load_addr:08X}",
                         "load_addr", OFF_LOAD_ADDR)
    if board is not None and head.board != board:
        raise ImageError(f"image is for board {head.board!r}, not {board!r}", "board", OFF_BOARD)
    return head


def bootctl_record(state: int, seq: int) -> bytes:
    """A 16-byte boot-control record (firmware/boot/sg_bootctl_priv.h)."""
    if not 0 <= state <= 4:
        raise ValueError(f"boot state must be 0..4, got {state}")
    rec = bytearray(BOOTCTL_RECORD_SIZE)
    _pack(_BC, rec, magic=BOOTCTL_MAGIC, seq=_u32("seq", seq), state=state)
    crc_at = _BC["crc"].offset
    _pack(_BC, rec, crc=zlib.crc32(bytes(rec[:crc_at])))
    return bytes(rec)


def parse_bootctl(sector: bytes) -> tuple[int, int] | None:
    """(seq, state) of the record at the start of a boot_ctl sector, or None if invalid."""
    if len(sector) < BOOTCTL_RECORD_SIZE:
        return None
    r = _unpack(BOOTCTL_RECORD, sector)
    if r["magic"] != BOOTCTL_MAGIC or r["crc"] != zlib.crc32(bytes(sector[:_BC["crc"].offset])) or r["state"] > 4:
        return None
    return r["seq"], r["state"]


def newest_bootctl(sectors: Sequence[bytes]) -> tuple[int, int] | None:
    """(seq, state) of the newest valid record over both sectors, as the firmware reads it."""
    best: tuple[int, int] | None = None
    for sector in sectors:
        rec = parse_bootctl(sector)
        if rec is not None and (best is None or 0 < ((rec[0] - best[0]) & 0xFFFFFFFF) < 0x80000000):
            best = rec
    return best


def _int(text: str) -> int:
    return int(text, 0)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write an image from a raw binary, or check one with --check."""
    ap = argparse.ArgumentParser(prog="python -m pysg.device.image", description=__doc__.split("\n")[0])
    ap.add_argument("binary", type=pathlib.Path, help="raw application binary (objcopy -O binary), "
                                                      "or an image with --check")
    ap.add_argument("--load-addr", type=_int, help="where the binary runs (app_primary + 256)")
    ap.add_argument("--version", type=_int, help="firmware version, e.g. 0x000200 for 0.2.0")
    ap.add_argument("--board", help="board name (sg_board_name())")
    ap.add_argument("-o", "--output", type=pathlib.Path, help="image file to write")
    ap.add_argument("--check", action="store_true", help="check an existing image instead")
    args = ap.parse_args(argv)
    data = args.binary.read_bytes()
    try:
        if args.check:
            head = check_image(data, load_addr=args.load_addr, board=args.board)
            print(f"{args.binary}: valid image, {head.size} bytes, version {head.version_str}, "
                  f"board {head.board}, load_addr 0x{head.load_addr:08X}, crc 0x{head.crc:08X}")
            return 0
        missing = [n for n in ("load_addr", "version", "board", "output") if getattr(args, n) is None]
        if missing:
            ap.error("missing " + ", ".join("--" + m.replace("_", "-") for m in missing))
        args.output.write_bytes(make_image(data, args.load_addr, args.version, args.board))
    except ValueError as exc:
        print(f"{args.binary}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
