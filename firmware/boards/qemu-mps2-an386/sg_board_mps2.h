/* SPDX-License-Identifier: MIT */
/*
 * QEMU mps2-an386 board internals: the memory map the startup code, the linker
 * scripts and pysg/device/qemu.py agree on.
 *
 * Flash is the 4 MB code region at 0 (RAM under QEMU, written by this board's flash
 * driver). QEMU re-copies every image it loaded at each guest system reset, so only the
 * bootloader is loaded over flash (-kernel boot.elf); the rest of the initial flash
 * comes from a 4 MB staging image in the 16 MB RAM at SG_MPS2_STAGING (-device loader)
 * that the bootloader copies beyond itself on a cold start only. A cold start is told
 * from a warm reset by SG_MPS2_WARM_MAGIC in a RAM block that neither program
 * initialises (zero in a fresh QEMU, kept across a system reset).
 */
#ifndef SG_BOARD_MPS2_H
#define SG_BOARD_MPS2_H

#include <stdint.h>

#define SG_MPS2_FLASH_SIZE 0x00400000u
#define SG_MPS2_SECTOR 0x1000u
#define SG_MPS2_BOOT_SIZE 0x00010000u
#define SG_MPS2_STAGING 0x21000000u
#define SG_MPS2_WARM_MAGIC 0x4D524157u /* "WARM" */
#define SG_MPS2_CUT_MAGIC 0x54554343u  /* "CCUT": a fault-injection power cut happened */

/*
 * Kept across warm resets at 0x203FFF00 (outside both programs' RAM). Fault injection
 * (bootloader built with SG_BOARD_FAULT_INJECT): on a cold start cut_at is read from
 * SG_MPS2_CUT_ARG; the bootloader's flash operation number cut_at (counted from the
 * cold start, 1-based) does half its work, sets cut_hit and the CPU stops there.
 */
typedef struct sg_mps2_noinit {
    uint32_t warm;    /* SG_MPS2_WARM_MAGIC after the first boot */
    uint32_t cut_at;  /* 0: no cut */
    uint32_t ops;     /* bootloader flash operations since the cold start */
    uint32_t cut_hit; /* SG_MPS2_CUT_MAGIC once the cut happened */
    uint32_t boots;   /* bootloader runs since the cold start */
} sg_mps2_noinit;

#define SG_MPS2_NOINIT ((volatile sg_mps2_noinit *)0x203FFF00u)
#define SG_MPS2_CUT_ARG 0x21FFFFF0u

/** Bootloader only: at a cold start, fill flash beyond the bootloader from staging. */
void sg_mps2_cold_start(void);

#endif /* SG_BOARD_MPS2_H */
