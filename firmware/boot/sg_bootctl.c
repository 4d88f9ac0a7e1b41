/* SPDX-License-Identifier: MIT */
/*
 * Boot control over the board's flash API (portable): the two-sector record the
 * application and the bootloader share, and the firmware image check. Record layout
 * in sg_bootctl_priv.h.
 */
#include "sg_bootctl.h"

#include <string.h>

#include "sg_board.h"
#include "sg_bootctl_priv.h"
#include "sg_image.h"
#include "sg_proto_ops.h"
#include "sg_runtime.h"

#ifndef SG_FW_VERSION
#define SG_FW_VERSION 0x000100u
#endif

uint32_t sg_flash_rd32(uint32_t addr)
{
    const uint8_t *p = sg_board_flash_ptr(addr);
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int has_bootctl(const sg_flash_layout *lay)
{
    return lay->boot_ctl[0].size >= SG_BOOTCTL_RECORD_SIZE &&
           lay->boot_ctl[1].size >= SG_BOOTCTL_RECORD_SIZE;
}

/* A record is valid when magic, CRC and state are; *seq and *state receive it. */
static int record_valid(uint32_t addr, uint32_t *seq, uint8_t *state)
{
    const uint8_t *p = sg_board_flash_ptr(addr);
    if (sg_flash_rd32(addr + SG_BOOTCTL_OFF_MAGIC) != SG_BOOTCTL_MAGIC ||
        sg_flash_rd32(addr + SG_BOOTCTL_OFF_CRC) != sg_crc32(0, p, SG_BOOTCTL_OFF_CRC) ||
        p[SG_BOOTCTL_OFF_STATE] > SG_BOOT_REVERTING) {
        return 0;
    }
    *seq = sg_flash_rd32(addr + SG_BOOTCTL_OFF_SEQ);
    *state = p[SG_BOOTCTL_OFF_STATE];
    return 1;
}

/* The boot-selection record in the sector at @p sector_addr (valid = 0 when absent or torn). */
static void sel_read(uint32_t sector_addr, sg_model_sel *sel)
{
    const uint32_t a = sector_addr + SG_MODELSEL_SECTOR_OFFSET;
    const uint8_t *p = sg_board_flash_ptr(a);
    memset(sel, 0, sizeof *sel);
    if (sg_flash_rd32(a + SG_MODELSEL_OFF_MAGIC) != SG_MODELSEL_MAGIC ||
        sg_flash_rd32(a + SG_MODELSEL_OFF_CRC) != sg_crc32(0, p, SG_MODELSEL_OFF_CRC)) {
        return;
    }
    sel->valid = 1;
    sel->slot = p[SG_MODELSEL_OFF_SLOT];
    sel->generation = sg_flash_rd32(a + SG_MODELSEL_OFF_GENERATION);
    sel->newest = sg_flash_rd32(a + SG_MODELSEL_OFF_NEWEST);
}

int sg_bootctl_read(sg_bootctl_record *rec)
{
    const sg_flash_layout *lay = sg_board_flash_layout();
    int i;
    rec->seq = 0;
    rec->state = SG_BOOT_IDLE;
    rec->sector = -1;
    memset(&rec->sel, 0, sizeof rec->sel);
    if (!has_bootctl(lay)) {
        return -1;
    }
    for (i = 0; i < 2; ++i) {
        uint32_t seq;
        uint8_t state;
        if (!record_valid(lay->boot_ctl[i].addr, &seq, &state)) {
            continue;
        }
        /* newer = ahead modulo 2^32, so the counter may wrap */
        if (rec->sector < 0 || (int32_t)(seq - rec->seq) > 0) {
            rec->seq = seq;
            rec->state = state;
            rec->sector = (int8_t)i;
        }
    }
    if (rec->sector < 0) {
        return -1;
    }
    sel_read(lay->boot_ctl[rec->sector].addr, &rec->sel);
    return 0;
}

/* The boot-control record @p state with the selection @p sel, in the sector that does not
 * hold the newest pair: erase, selection, then the record (the commit), read back. */
static int write_pair(uint8_t state, const sg_model_sel *sel)
{
    const sg_flash_layout *lay = sg_board_flash_layout();
    sg_bootctl_record cur;
    uint8_t rec[SG_BOOTCTL_RECORD_SIZE];
    uint8_t ms[SG_MODELSEL_RECORD_SIZE];
    uint32_t seq, crc, got_seq;
    uint8_t got_state;
    const sg_flash_region *dst;
    if (!has_bootctl(lay) || lay->boot_ctl[0].size < SG_MODELSEL_SECTOR_OFFSET + SG_MODELSEL_RECORD_SIZE ||
        lay->boot_ctl[1].size < SG_MODELSEL_SECTOR_OFFSET + SG_MODELSEL_RECORD_SIZE) {
        return -2;
    }
    if (state > SG_BOOT_REVERTING) {
        return -1;
    }
    (void)sg_bootctl_read(&cur);
    dst = &lay->boot_ctl[cur.sector == 0 ? 1 : 0];
    seq = cur.seq + 1u;
    if (sg_board_flash_erase(dst->addr, dst->size) != 0) {
        return -1;
    }
    if (sel->valid) {
        memset(ms, 0, sizeof ms);
        wr32(ms + SG_MODELSEL_OFF_MAGIC, SG_MODELSEL_MAGIC);
        ms[SG_MODELSEL_OFF_SLOT] = sel->slot;
        wr32(ms + SG_MODELSEL_OFF_GENERATION, sel->generation);
        wr32(ms + SG_MODELSEL_OFF_NEWEST, sel->newest);
        wr32(ms + SG_MODELSEL_OFF_CRC, sg_crc32(0, ms, SG_MODELSEL_OFF_CRC));
        if (sg_board_flash_program(dst->addr + SG_MODELSEL_SECTOR_OFFSET, ms, sizeof ms) != 0 ||
            memcmp(sg_board_flash_ptr(dst->addr + SG_MODELSEL_SECTOR_OFFSET), ms, sizeof ms) != 0) {
            return -1;
        }
    }
    memset(rec, 0, sizeof rec);
    wr32(rec + SG_BOOTCTL_OFF_MAGIC, SG_BOOTCTL_MAGIC);
    wr32(rec + SG_BOOTCTL_OFF_SEQ, seq);
    rec[SG_BOOTCTL_OFF_STATE] = state;
    crc = sg_crc32(0, rec, SG_BOOTCTL_OFF_CRC);
    wr32(rec + SG_BOOTCTL_OFF_CRC, crc);
    if (sg_board_flash_program(dst->addr, rec, sizeof rec) != 0) {
        return -1;
    }
    /* read back: the record must now be the valid one */
    if (!record_valid(dst->addr, &got_seq, &got_state) || got_seq != seq || got_state != state) {
        return -1;
    }
    return 0;
}

int sg_bootctl_write(uint8_t state)
{
    sg_bootctl_record cur;
    (void)sg_bootctl_read(&cur);
    return write_pair(state, &cur.sel) == 0 ? 0 : -1; /* the boot-selection record carried over */
}

void sg_bootctl_model_sel(sg_model_sel *sel)
{
    sg_bootctl_record cur;
    (void)sg_bootctl_read(&cur);
    *sel = cur.sel;
}

int sg_bootctl_select_model(const sg_model_sel *sel)
{
    sg_bootctl_record cur;
    sg_model_sel want = *sel;
    (void)sg_bootctl_read(&cur);
    want.valid = 1;
    return write_pair(cur.state, &want); /* the boot state is kept */
}

void sg_bootctl_info(sg_boot_info *info)
{
    const sg_flash_layout *lay = sg_board_flash_layout();
    sg_bootctl_record rec;
    uint32_t a = lay->app_primary.addr;
    info->state = SG_BOOT_IDLE;
    info->confirmed = 1;
    info->fw_version = SG_FW_VERSION;
    info->fw_crc = 0;
    if (!has_bootctl(lay)) {
        return;
    }
    (void)sg_bootctl_read(&rec);
    info->state = rec.state;
    info->confirmed = rec.state == SG_BOOT_TRIAL ? 0u : 1u;
    /* the running image is the primary one; its header is trusted when its CRC is */
    if (lay->app_primary.size >= SG_IMAGE_HEADER_SIZE &&
        sg_flash_rd32(a + SG_IMAGE_OFF_MAGIC) == SG_IMAGE_MAGIC &&
        sg_flash_rd32(a + SG_IMAGE_OFF_HEADER_CRC) ==
            sg_crc32(0, sg_board_flash_ptr(a), SG_IMAGE_OFF_HEADER_CRC)) {
        info->fw_version = sg_flash_rd32(a + SG_IMAGE_OFF_VERSION);
        info->fw_crc = sg_flash_rd32(a + SG_IMAGE_OFF_CRC);
    }
}

int sg_bootctl_request_upgrade(void)
{
    return sg_bootctl_write(SG_BOOT_PENDING);
}

int sg_bootctl_confirm(void)
{
    sg_bootctl_record rec;
    if (!has_bootctl(sg_board_flash_layout())) {
        return 0;
    }
    if (sg_bootctl_read(&rec) != 0 || rec.state != SG_BOOT_TRIAL) {
        return 0;
    }
    return sg_bootctl_write(SG_BOOT_IDLE);
}

int sg_image_check(uint32_t region_addr, uint32_t region_size, uint32_t load_addr)
{
    const uint8_t *h;
    const char *name = sg_board_name();
    size_t name_len = strlen(name);
    uint32_t size;
    size_t i;
    if (region_size < SG_IMAGE_HEADER_SIZE) {
        return -1;
    }
    h = sg_board_flash_ptr(region_addr);
    size = sg_flash_rd32(region_addr + SG_IMAGE_OFF_SIZE);
    if (sg_flash_rd32(region_addr + SG_IMAGE_OFF_MAGIC) != SG_IMAGE_MAGIC ||
        rd16(h + SG_IMAGE_OFF_HEADER_SIZE) != SG_IMAGE_HEADER_SIZE ||
        rd16(h + SG_IMAGE_OFF_HEADER_VERSION) != SG_IMAGE_HEADER_VERSION ||
        sg_flash_rd32(region_addr + SG_IMAGE_OFF_HEADER_CRC) !=
            sg_crc32(0, h, SG_IMAGE_OFF_HEADER_CRC)) {
        return -1;
    }
    if (size == 0u || size > region_size - SG_IMAGE_HEADER_SIZE ||
        sg_flash_rd32(region_addr + SG_IMAGE_OFF_LOAD_ADDR) != load_addr) {
        return -1;
    }
    /* board name: exactly ours, NUL-padded */
    if (name_len >= SG_IMAGE_BOARD_LEN || memcmp(h + SG_IMAGE_OFF_BOARD, name, name_len) != 0) {
        return -1;
    }
    for (i = name_len; i < SG_IMAGE_BOARD_LEN; ++i) {
        if (h[SG_IMAGE_OFF_BOARD + i] != 0u) {
            return -1;
        }
    }
    if (sg_flash_rd32(region_addr + SG_IMAGE_OFF_CRC) !=
        sg_crc32(0, h + SG_IMAGE_HEADER_SIZE, size)) {
        return -1;
    }
    return 0;
}
