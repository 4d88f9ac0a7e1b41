/* SPDX-License-Identifier: MIT */
/*
 * Boot-control internals shared by sg_bootctl.c and the bootloader (sg_boot.c).
 *
 * Record (16 bytes, little-endian) at the start of a boot_ctl sector:
 *   0 u32 magic SG_BOOTCTL_MAGIC ("SGBC")   4 u32 seq (newer = larger, mod 2^32)
 *   8 u8 state (sg_boot_state)              9..11 zero
 *  12 u32 CRC-32 of bytes [0, 12)
 * At SG_MODELSEL_SECTOR_OFFSET of the same sector: the boot-selection record (sg_bootctl.h,
 * MODELSEL_RECORD), or erased bytes when no model slot was chosen.
 * A write erases the sector that does not hold the newest valid record and programs
 * the selection (carried over, or the new one) and then the new record (seq + 1) there:
 * the record is the commit, so a torn erase or program leaves the older pair.
 * pysg/device/image.py (bootctl_record) writes the same bytes from the same table.
 */
#ifndef SG_BOOTCTL_PRIV_H
#define SG_BOOTCTL_PRIV_H

#include <stddef.h>
#include <stdint.h>

/* SG_BOOTCTL_MAGIC, SG_BOOTCTL_RECORD_SIZE, SG_BOOTCTL_OFF_<FIELD>: generated from
 * pysg/device/ops.py (BOOTCTL_RECORD) */
#include "sg_bootctl.h"
#include "sg_proto_ops.h"

/** The newest valid record; both fields 0 (IDLE, seq 0) when none is valid. */
typedef struct sg_bootctl_record {
    uint32_t seq;
    uint8_t state;
    int8_t sector;    /**< boot_ctl index holding it, -1 when none is valid */
    sg_model_sel sel; /**< the boot-selection record of that sector */
} sg_bootctl_record;

/** Read the newest valid record into @p rec; 0 when one is valid, -1 when none is. */
int sg_bootctl_read(sg_bootctl_record *rec);

/** Record @p state (seq + 1, the other sector, the selection carried over); 0 on success,
 *  -1 on a flash error. */
int sg_bootctl_write(uint8_t state);

/** Little-endian u32 at board address @p addr. */
uint32_t sg_flash_rd32(uint32_t addr);

#endif /* SG_BOOTCTL_PRIV_H */
