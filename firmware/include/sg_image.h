/* SPDX-License-Identifier: MIT */
/*
 * Firmware image header (docs/PROTOCOL.md 3.5): 256 bytes before the application
 * binary, which is linked to run at app_primary.addr + SG_IMAGE_HEADER_SIZE (its
 * vector table first). `python -m pysg.device.image` writes it.
 */
#ifndef SG_IMAGE_H
#define SG_IMAGE_H

#include <stdint.h>

#define SG_IMAGE_MAGIC 0x4D494753u /* "SGIM" */
#define SG_IMAGE_HEADER_VERSION 1u

/* Byte offsets of the header fields (all little-endian). */
#define SG_IMAGE_OFF_MAGIC 0          /* u32 SG_IMAGE_MAGIC */
#define SG_IMAGE_OFF_HEADER_SIZE 4    /* u16 256 */
#define SG_IMAGE_OFF_HEADER_VERSION 6 /* u16 1 */
#define SG_IMAGE_OFF_SIZE 8           /* u32 bytes of binary after the header */
#define SG_IMAGE_OFF_CRC 12           /* u32 CRC-32 of the binary */
#define SG_IMAGE_OFF_LOAD_ADDR 16     /* u32 where the binary runs: app_primary.addr + 256 */
#define SG_IMAGE_OFF_VERSION 20       /* u32 firmware version (major << 16 | minor << 8 | patch) */
#define SG_IMAGE_OFF_BOARD 24         /* char[32] board name, NUL-padded (sg_board_name()) */
#define SG_IMAGE_OFF_HEADER_CRC 252   /* u32 CRC-32 of bytes [0, 252); bytes 56..251 are 0 */

#endif /* SG_IMAGE_H */
