/* SPDX-License-Identifier: MIT */
/*
 * The model slots (PROTOCOL.md 3.2): the boot-time scan that picks and runs the active
 * model, what this build can run, and the upload ops MODEL_BEGIN/DATA/END/ACTIVATE/READ and the roll-back MODEL_SELECT.
 */
#include <string.h>

#include "sg_app_priv.h"
#include "sg_board.h"
#include "sg_bootctl.h"
#include "sg_format.h"
#include "sg_proto_ops.h"

/* The runtime arena (8-byte aligned); not part of sg_app: a model's state needs no zeroing. */
static uint64_t g_arena[(SG_APP_ARENA_SIZE + 7u) / 8u];

uint32_t sg_app_n_inputs(const sg_model *m)
{
    return (uint32_t)sg_model_count_channels(m) * m->in_h * m->in_w;
}

/*
 * This build's limits on a model the runtime accepted: SG_OK, or an sg_status and in
 * *offset the byte of the file that exceeds them (FORMAT.md's field offsets).
 */
static int model_fits(const sg_model *m, uint32_t *offset)
{
    if (m->arena_bytes > SG_APP_ARENA_SIZE) {
        *offset = SG_HDR_ARENA_BYTES;
        return SG_ERR_ARENA;
    }
    if (sg_app_n_inputs(m) > SG_APP_MAX_INPUTS) {
        *offset = SG_HDR_IN_C;
        return SG_ERR_UNSUPPORTED;
    }
    if (sg_model_count_channels(m) == 0u) {
        /* tensor input: the protocol streams event counts only; point at the input
         * entry's slices (a version 2 entry's kernel_h, FORMAT.md 7.2) */
        *offset = sg_get_u32(m->data + SG_HDR_LAYERS_OFFSET) + SG_L2_KERNEL_H;
        return SG_ERR_UNSUPPORTED;
    }
    return SG_OK;
}

void sg_app_load_active(void)
{
    unsigned i;
    int active;
    uint32_t off;
    sg_model_sel sel;
    sg_app.active = -1;
    sg_app.streaming = 0;
    memset(&sg_app.rt, 0, sizeof sg_app.rt);
    for (i = 0; i < SG_SLOT_COUNT; ++i) {
        sg_slot_read(i, &sg_app.scratch, &sg_app.slots[i]);
        if (sg_app.slots[i].valid && model_fits(&sg_app.scratch, &off) != SG_OK) {
            sg_app.slots[i].valid = 0;
        }
    }
    sg_bootctl_model_sel(&sel);
    active = sg_slots_pick(sg_app.slots, &sel);
    if (active < 0) {
        return;
    }
    i = (unsigned)active;
    if (sg_model_load(&sg_app.model, sg_board_flash_ptr(sg_slot_data_addr(i)), sg_app.slots[i].size)
            != SG_OK
        || sg_runtime_init(&sg_app.rt, &sg_app.model, g_arena, sizeof g_arena) != SG_OK) {
        sg_app.slots[i].valid = 0;
        memset(&sg_app.rt, 0, sizeof sg_app.rt);
        return;
    }
    sg_app.active = (int)i;
}

size_t sg_app_op_model_begin(const uint8_t *in, size_t n, uint8_t *out)
{
    const sg_flash_layout *l = sg_board_flash_layout();
    unsigned target = sg_app.active < 0 ? 0u : 1u - (unsigned)sg_app.active;
    uint32_t resume = 0;
    int s;
    (void)n;
    s = sg_upload_begin(&sg_app.model_up, l->model[target].addr, l->model[target].size,
                        sg_slot_data_addr(target), sg_slot_capacity(target), (uint8_t)target,
                        sg_get_u32(in + SG_REQ_MODEL_BEGIN_SIZE), sg_get_u32(in + SG_REQ_MODEL_BEGIN_CRC),
                        &resume);
    if (s != SG_DEV_OK) {
        return sg_app_status(out, s);
    }
    /* The slot was erased (or holds part of this upload): it no longer has a model. */
    memset(&sg_app.slots[target], 0, sizeof sg_app.slots[target]);
    out[0] = SG_DEV_OK;
    out[SG_REPLY_MODEL_BEGIN_SLOT] = (uint8_t)target;
    sg_put_u32(out + SG_REPLY_MODEL_BEGIN_RESUME_OFFSET, resume);
    return SG_REPLY_MODEL_BEGIN_LEN;
}

size_t sg_app_op_model_data(const uint8_t *in, size_t n, uint8_t *out)
{
    return sg_app_upload_data(&sg_app.model_up, in, n, out);
}

size_t sg_app_op_model_end(const uint8_t *in, size_t n, uint8_t *out)
{
    sg_upload *up = &sg_app.model_up;
    uint32_t off = 0;
    int s;
    (void)in;
    (void)n;
    s = sg_upload_verify(up);
    if (s != SG_DEV_OK) {
        return sg_app_status(out, s);
    }
    s = sg_model_load(&sg_app.scratch, sg_board_flash_ptr(up->data_addr), up->size);
    if (s != SG_OK) {
        off = sg_app.scratch.error_offset;
    } else {
        s = model_fits(&sg_app.scratch, &off);
    }
    if (s != SG_OK) {
        up->state = SG_UPLOAD_IDLE; /* the same bytes would fail again */
        return sg_app_status_model(out, s, off);
    }
    out[0] = SG_DEV_OK;
    out[SG_REPLY_MODEL_END_SLOT] = up->target;
    return SG_REPLY_MODEL_END_LEN;
}

size_t sg_app_op_model_activate(const uint8_t *in, size_t n, uint8_t *out)
{
    sg_upload *up = &sg_app.model_up;
    unsigned target = up->target;
    sg_model_sel sel;
    uint32_t generation;
    int s;
    (void)in;
    (void)n;
    if (up->state != SG_UPLOAD_VERIFIED) {
        return sg_app_status(out, SG_DEV_ERR_STATE);
    }
    /* Ahead of every generation known, the boot-selection record's too (mod 2^32: the slot
     * comparison wraps with it): the new model is the newest, a roll back no longer applies. */
    sg_bootctl_model_sel(&sel);
    generation = sg_slots_next_generation(sg_app.slots, &sel);
    s = sg_slot_commit(target, generation, up->size, up->crc);
    up->state = SG_UPLOAD_IDLE;
    if (s != SG_DEV_OK) {
        return sg_app_status(out, s);
    }
    sg_app_load_active();
    if (sg_app.active != (int)target) { /* flash changed under us: the header does not read back valid */
        return sg_app_status(out, SG_DEV_ERR_FLASH);
    }
    out[0] = SG_DEV_OK;
    out[SG_REPLY_MODEL_ACTIVATE_SLOT] = (uint8_t)target;
    sg_put_u32(out + SG_REPLY_MODEL_ACTIVATE_GENERATION, generation);
    return SG_REPLY_MODEL_ACTIVATE_LEN;
}

size_t sg_app_op_model_read(const uint8_t *in, size_t n, uint8_t *out)
{
    const unsigned slot = in[SG_REQ_MODEL_READ_SLOT];
    const uint32_t offset = sg_get_u32(in + SG_REQ_MODEL_READ_OFFSET);
    const uint16_t count = sg_get_u16(in + SG_REQ_MODEL_READ_COUNT);
    (void)n;
    if (slot >= SG_SLOT_COUNT || count > SG_PROTO_MAX_PAYLOAD - SG_REPLY_MODEL_READ_DATA
        || (uint64_t)offset + count > sg_slot_capacity(slot)) {
        return sg_app_status(out, SG_DEV_ERR_ARG);
    }
    out[0] = SG_DEV_OK;
    memcpy(out + SG_REPLY_MODEL_READ_DATA, sg_board_flash_ptr(sg_slot_data_addr(slot) + offset), count);
    return SG_REPLY_MODEL_READ_DATA + count;
}

/* Roll back (or forward): make @p slot (valid) the active one with a boot-selection record;
 * both models stay. One record write: a power cut leaves the previous choice. */
size_t sg_app_op_model_select(const uint8_t *in, size_t n, uint8_t *out)
{
    const unsigned slot = in[SG_REQ_MODEL_SELECT_SLOT];
    sg_model_sel sel;
    int newest, s;
    (void)n;
    if (slot >= SG_SLOT_COUNT) {
        return sg_app_status(out, SG_DEV_ERR_ARG);
    }
    if (!sg_app.slots[slot].valid) {
        return sg_app_status(out, SG_DEV_ERR_SLOT);
    }
    if (sg_app.active >= 0 && (unsigned)sg_app.active != slot) {
        sg_app.model_up.state = SG_UPLOAD_IDLE; /* it may target the slot that becomes active */
        newest = sg_slots_active(sg_app.slots);
        memset(&sel, 0, sizeof sel);
        sel.valid = 1;
        sel.slot = (uint8_t)slot;
        sel.generation = sg_app.slots[slot].generation;
        sel.newest = sg_app.slots[(unsigned)newest].generation;
        s = sg_bootctl_select_model(&sel);
        if (s != 0) { /* -2: a board without boot-control sectors cannot keep a choice */
            return sg_app_status(out, s == -2 ? SG_DEV_ERR_UNSUPPORTED : SG_DEV_ERR_FLASH);
        }
        sg_app_load_active();
    }
    if (sg_app.active != (int)slot) { /* the slot did not load back valid */
        return sg_app_status(out, SG_DEV_ERR_FLASH);
    }
    out[0] = SG_DEV_OK;
    out[SG_REPLY_MODEL_SELECT_SLOT] = (uint8_t)slot;
    sg_put_u32(out + SG_REPLY_MODEL_SELECT_GENERATION, sg_app.slots[slot].generation);
    return SG_REPLY_MODEL_SELECT_LEN;
}
