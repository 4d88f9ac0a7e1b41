/* SPDX-License-Identifier: MIT */
/*
 * Firmware image header (docs/PROTOCOL.md 3.5): 256 bytes before the application
 * binary, which is linked to run at app_primary.addr + SG_IMAGE_HEADER_SIZE (its
 * vector table first). `python -m pysg.device.image` writes it.
 */
#ifndef SG_IMAGE_H
#define SG_IMAGE_H

/*
 * The header's layout (SG_IMAGE_MAGIC, SG_IMAGE_HEADER_VERSION, SG_IMAGE_OFF_<FIELD>,
 * SG_IMAGE_BOARD_LEN) is generated into sg_proto_ops.h from pysg/device/ops.py
 * (IMAGE_HEADER): magic "SGIM", u16 header size 256, u16 header version 1, u32 size of
 * the binary, u32 its CRC-32, u32 load address, u32 version (major << 16 | minor << 8 |
 * patch), char[32] board name NUL-padded (sg_board_name()), zeros, u32 CRC-32 of the
 * bytes before it.
 */
#include "sg_proto_ops.h"

#endif /* SG_IMAGE_H */
