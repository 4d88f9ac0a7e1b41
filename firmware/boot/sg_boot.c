/* SPDX-License-Identifier: MIT */
/*
 * The bootloader (portable over sg_board.h; the jump is Cortex-M). At reset it reads
 * the boot-control record and moves the upgrade on by one recorded step at a time:
 *
 *   PENDING    secondary valid? copy primary -> backup, record BACKED_UP
 *   BACKED_UP  copy secondary -> primary, record TRIAL, boot (the image confirms itself)
 *   TRIAL      found at reset: the trial image did not confirm; record REVERTING
 *   REVERTING  copy backup -> primary, record IDLE
 *   IDLE       boot the primary image; if it is invalid and backup is valid, revert
 *
 * A copy is erase + program + check, so repeating it is harmless: after a power cut
 * the step recorded last is simply done again. Nothing is recorded before the copy it
 * announces is complete and checked.
 */
#include <stdint.h>

#include "sg_board.h"
#include "sg_bootctl.h"
#include "sg_bootctl_priv.h"
#include "sg_image.h"
#include "sg_proto_ops.h"

#define SG_BOOT_CHUNK 256u

static uint8_t sg_boot_buf[SG_BOOT_CHUNK];

static int sg_valid(const sg_flash_region *r, uint32_t load)
{
    return sg_image_check(r->addr, r->size, load) == 0;
}

/* Copy the image (header + binary) in @p src to @p dst and check it there. */
static int sg_copy(const sg_flash_region *src, const sg_flash_region *dst, uint32_t load)
{
    uint32_t n = SG_IMAGE_HEADER_SIZE + sg_flash_rd32(src->addr + SG_IMAGE_OFF_SIZE);
    uint32_t off;
    if (n > dst->size || sg_board_flash_erase(dst->addr, dst->size) != 0) {
        return -1;
    }
    for (off = 0; off < n; off += SG_BOOT_CHUNK) {
        uint32_t k = n - off < SG_BOOT_CHUNK ? n - off : SG_BOOT_CHUNK;
        const uint8_t *p = sg_board_flash_ptr(src->addr + off);
        uint32_t i;
        /* through RAM: some flashes cannot be read while they program */
        for (i = 0; i < k; ++i) {
            sg_boot_buf[i] = p[i];
        }
        if (sg_board_flash_program(dst->addr + off, sg_boot_buf, k) != 0) {
            return -1;
        }
    }
    return sg_valid(dst, load) ? 0 : -1;
}

#if defined(__arm__)
__attribute__((noreturn)) static void sg_jump(uint32_t load)
{
    const uint8_t *vt = sg_board_flash_ptr(load);
    uint32_t sp = sg_flash_rd32(load);
    uint32_t pc = sg_flash_rd32(load + 4u);
    *(volatile uint32_t *)0xE000ED08u = (uint32_t)(uintptr_t)vt; /* SCB VTOR */
    __asm__ volatile("dsb\n\tisb\n\tmsr msp, %0\n\tbx %1" : : "r"(sp), "r"(pc) : "memory");
    for (;;) {
    }
}
#else
#error "sg_boot.c: no jump for this architecture"
#endif

/* Revert: backup -> primary when backup holds a valid image; then IDLE. */
static void sg_revert(const sg_flash_layout *lay, uint32_t load)
{
    if (sg_valid(&lay->app_backup, load)) {
        (void)sg_copy(&lay->app_backup, &lay->app_primary, load);
    }
    (void)sg_bootctl_write(SG_BOOT_IDLE);
}

int main(void)
{
    const sg_flash_layout *lay = sg_board_flash_layout();
    const uint32_t load = lay->app_primary.addr + SG_IMAGE_HEADER_SIZE;
    sg_bootctl_record rec;
    (void)sg_bootctl_read(&rec);

    switch (rec.state) {
    case SG_BOOT_PENDING:
        if (!sg_valid(&lay->app_secondary, load)) {
            (void)sg_bootctl_write(SG_BOOT_IDLE); /* nothing to install */
            break;
        }
        /* an invalid primary is not backed up: the backup keeps what it had */
        if (sg_valid(&lay->app_primary, load) &&
            sg_copy(&lay->app_primary, &lay->app_backup, load) != 0) {
            break; /* flash error: stay PENDING, boot the old image */
        }
        if (sg_bootctl_write(SG_BOOT_BACKED_UP) != 0) {
            break;
        }
        /* fall through */
    case SG_BOOT_BACKED_UP:
        if (!sg_valid(&lay->app_secondary, load) ||
            sg_copy(&lay->app_secondary, &lay->app_primary, load) != 0) {
            if (sg_bootctl_write(SG_BOOT_REVERTING) == 0) {
                sg_revert(lay, load);
            }
            break;
        }
        (void)sg_bootctl_write(SG_BOOT_TRIAL);
        break;
    case SG_BOOT_TRIAL:
        if (sg_bootctl_write(SG_BOOT_REVERTING) != 0) {
            break;
        }
        /* fall through */
    case SG_BOOT_REVERTING:
        sg_revert(lay, load);
        break;
    default:
        break;
    }

    if (!sg_valid(&lay->app_primary, load) && sg_valid(&lay->app_backup, load) &&
        sg_bootctl_write(SG_BOOT_REVERTING) == 0) {
        sg_revert(lay, load);
    }
    if (sg_valid(&lay->app_primary, load)) {
        sg_jump(load);
    }
    /* nothing bootable: wait for a debugger or a power cycle */
    for (;;) {
        sg_board_idle();
    }
}
