/* SPDX-License-Identifier: MIT */
/* Model slots (header written last) and the BEGIN/DATA/END upload state machine. */
#include "sg_slots.h"

#include <string.h>

#include "sg_board.h"
#include "sg_proto.h"
#include "sg_proto_ops.h"

static const sg_flash_region *slot_region(unsigned slot)
{
    const sg_flash_layout *l = sg_board_flash_layout();
    return slot < SG_SLOT_COUNT ? &l->model[slot] : NULL;
}

uint32_t sg_slot_data_addr(unsigned slot)
{
    const sg_flash_region *r = slot_region(slot);
    return r == NULL ? 0u : r->addr + SG_SLOT_HEADER_SIZE;
}

uint32_t sg_slot_capacity(unsigned slot)
{
    const sg_flash_region *r = slot_region(slot);
    return (r == NULL || r->size <= SG_SLOT_HEADER_SIZE) ? 0u : r->size - SG_SLOT_HEADER_SIZE;
}

void sg_slot_read(unsigned slot, sg_model *scratch, sg_slot_info *info)
{
    const sg_flash_region *r = slot_region(slot);
    const uint8_t *h;
    memset(info, 0, sizeof *info);
    if (r == NULL || sg_slot_capacity(slot) == 0u) {
        return;
    }
    h = sg_board_flash_ptr(r->addr);
    if (sg_get_u32(h + SG_SLOT_OFF_MAGIC) != SG_SLOT_MAGIC
        || sg_get_u16(h + SG_SLOT_OFF_HEADER_SIZE) != SG_SLOT_HEADER_SIZE
        || sg_get_u16(h + SG_SLOT_OFF_VERSION) != SG_SLOT_VERSION
        || sg_crc32(0, h, SG_SLOT_OFF_HEADER_CRC) != sg_get_u32(h + SG_SLOT_OFF_HEADER_CRC)) {
        return;
    }
    info->generation = sg_get_u32(h + SG_SLOT_OFF_GENERATION);
    info->size = sg_get_u32(h + SG_SLOT_OFF_SIZE);
    info->crc = sg_get_u32(h + SG_SLOT_OFF_CRC);
    if (info->size == 0u || info->size > sg_slot_capacity(slot)) {
        return;
    }
    /* The model CRC catches flash that changed after the header was written. */
    h = sg_board_flash_ptr(sg_slot_data_addr(slot));
    if (sg_crc32(0, h, info->size) != info->crc || sg_model_load(scratch, h, info->size) != SG_OK) {
        return;
    }
    info->valid = 1;
}

int sg_slots_active(const sg_slot_info *info)
{
    int best = -1;
    unsigned i;
    for (i = 0; i < SG_SLOT_COUNT; ++i) {
        /* newer = ahead modulo 2^32 (as the boot-control seq), so the counter may wrap */
        if (info[i].valid
            && (best < 0 || (int32_t)(info[i].generation - info[(unsigned)best].generation) > 0)) {
            best = (int)i;
        }
    }
    return best;
}

int sg_slots_pick(const sg_slot_info *info, const sg_model_sel *sel)
{
    int newest = sg_slots_active(info);
    if (newest >= 0 && sel != NULL && sel->valid && sel->slot < SG_SLOT_COUNT && info[sel->slot].valid
        && info[sel->slot].generation == sel->generation
        && info[(unsigned)newest].generation == sel->newest) {
        return (int)sel->slot;
    }
    return newest;
}

uint32_t sg_slots_next_generation(const sg_slot_info *info, const sg_model_sel *sel)
{
    int newest = sg_slots_active(info);
    uint32_t top = newest < 0 ? 0u : info[(unsigned)newest].generation;
    if (sel != NULL && sel->valid && (newest < 0 || (int32_t)(sel->newest - top) > 0)) {
        top = sel->newest;
    }
    return top + 1u;
}

int sg_slot_commit(unsigned slot, uint32_t generation, uint32_t size, uint32_t crc)
{
    const sg_flash_region *r = slot_region(slot);
    uint8_t h[SG_SLOT_HEADER_SIZE];
    if (r == NULL || sg_slot_capacity(slot) == 0u) {
        return SG_DEV_ERR_ARG;
    }
    memset(h, 0, sizeof h);
    sg_put_u32(h + SG_SLOT_OFF_MAGIC, SG_SLOT_MAGIC);
    sg_put_u16(h + SG_SLOT_OFF_HEADER_SIZE, SG_SLOT_HEADER_SIZE);
    sg_put_u16(h + SG_SLOT_OFF_VERSION, SG_SLOT_VERSION);
    sg_put_u32(h + SG_SLOT_OFF_GENERATION, generation);
    sg_put_u32(h + SG_SLOT_OFF_SIZE, size);
    sg_put_u32(h + SG_SLOT_OFF_CRC, crc);
    sg_put_u32(h + SG_SLOT_OFF_HEADER_CRC, sg_crc32(0, h, SG_SLOT_OFF_HEADER_CRC));
    if (sg_board_flash_program(r->addr, h, sizeof h) != 0
        || memcmp(sg_board_flash_ptr(r->addr), h, sizeof h) != 0) {
        return SG_DEV_ERR_FLASH;
    }
    return SG_DEV_OK;
}

/* Every byte of [addr, addr + n) still erased (0xFF): a resumed upload may program there. */
static int flash_erased(uint32_t addr, uint32_t n)
{
    const uint8_t *p = sg_board_flash_ptr(addr);
    uint32_t i;
    for (i = 0; i < n; ++i) {
        if (p[i] != 0xFFu) {
            return 0;
        }
    }
    return 1;
}

int sg_upload_begin(sg_upload *u, uint32_t region_addr, uint32_t region_size, uint32_t data_addr,
                    uint32_t capacity, uint8_t target, uint32_t size, uint32_t crc, uint32_t *resume)
{
    if (region_size == 0u || capacity == 0u) {
        return SG_DEV_ERR_UNSUPPORTED;
    }
    if (size > capacity) {
        return SG_DEV_ERR_TOO_BIG;
    }
    if (size == 0u) {
        return SG_DEV_ERR_ARG;
    }
    if (u->state != SG_UPLOAD_IDLE && u->region_addr == region_addr && u->target == target
        && u->size == size && u->crc == crc
        /* a chunk that failed (ERR_FLASH) may have left bits only an erase restores */
        && flash_erased(u->data_addr + u->received, u->size - u->received)) {
        u->state = SG_UPLOAD_RECEIVING; /* END (again) re-verifies */
        *resume = u->received;
        return SG_DEV_OK;
    }
    u->state = SG_UPLOAD_IDLE;
    if (sg_board_flash_erase(region_addr, region_size) != 0) {
        return SG_DEV_ERR_FLASH;
    }
    u->state = SG_UPLOAD_RECEIVING;
    u->target = target;
    u->region_addr = region_addr;
    u->data_addr = data_addr;
    u->size = size;
    u->crc = crc;
    u->received = 0;
    *resume = 0;
    return SG_DEV_OK;
}

int sg_upload_data(sg_upload *u, uint32_t offset, const uint8_t *data, size_t n, uint32_t *expected)
{
    if (u->state != SG_UPLOAD_RECEIVING) {
        return SG_DEV_ERR_STATE;
    }
    if (offset != u->received) {
        *expected = u->received;
        return SG_DEV_ERR_OFFSET;
    }
    if (n > (size_t)(u->size - u->received)) {
        return SG_DEV_ERR_ARG;
    }
    if (n == 0u) {
        return SG_DEV_OK;
    }
    if (sg_board_flash_program(u->data_addr + offset, data, n) != 0
        || memcmp(sg_board_flash_ptr(u->data_addr + offset), data, n) != 0) {
        return SG_DEV_ERR_FLASH;
    }
    u->received += (uint32_t)n;
    return SG_DEV_OK;
}

int sg_upload_verify(sg_upload *u)
{
    if (u->state == SG_UPLOAD_IDLE || u->received != u->size) {
        return SG_DEV_ERR_STATE;
    }
    if (sg_crc32(0, sg_board_flash_ptr(u->data_addr), u->size) != u->crc) {
        u->state = SG_UPLOAD_IDLE; /* resuming would only reproduce the same bytes */
        return SG_DEV_ERR_VERIFY;
    }
    u->state = SG_UPLOAD_VERIFIED;
    return SG_DEV_OK;
}
