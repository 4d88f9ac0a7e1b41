/* SPDX-License-Identifier: MIT */
/* The device application: boot, the receive loop, and one handler per protocol op. */
#include "sg_app.h"

#include <string.h>

#include "sg_board.h"
#include "sg_bootctl.h"
#include "sg_image.h"
#include "sg_proto.h"
#include "sg_proto_ops.h"
#include "sg_runtime.h"
#include "sg_slots.h"

#define SG_NAME_MAX 32u
#define SG_HDR_OFF_ARENA 20u /* .sgm header: arena_bytes (FORMAT.md 2) */
#define SG_HDR_OFF_IN_C 32u  /* .sgm header: in_c */
#define SG_HDR_OFF_LAYERS 52u   /* .sgm header: layers_offset */
#define SG_QENTRY_OFF_SLICES 16u /* version 2 input entry: kernel_h = slices (FORMAT.md 7.2) */

enum { SG_AFTER_NONE = 0, SG_AFTER_RESET = 1, SG_AFTER_BAUD = 2 };

/* All RAM state of the application; sg_app_init() zeroes it (a reset loses it). */
typedef struct sg_app_state {
    sg_proto_rx rx;
    sg_proto_cache cache;
    uint8_t tx[SG_PROTO_PACKET_MAX];
    sg_slot_info slots[SG_SLOT_COUNT];
    int active;            /* slot the runtime runs, -1 without a model */
    sg_model model;        /* the active model, in place in its slot */
    sg_model scratch;      /* models being checked (scan, END) */
    sg_runtime rt;
    uint8_t streaming;     /* STREAM_START since the model was loaded */
    uint8_t stream_flags;
    uint32_t caps;
    sg_upload model_up;
    sg_upload fw_up;
    uint32_t busy_us;
    uint8_t after;         /* SG_AFTER_*: what to do once the reply is sent */
    uint32_t after_baud;
    uint32_t baud;         /* the UART rate now (SET_BAUD returns to it after its probe) */
} sg_app_state;

static sg_app_state g;
/* The runtime arena (8-byte aligned) and one step's input counts, zero between steps. */
static uint64_t g_arena[(SG_APP_ARENA_SIZE + 7u) / 8u];
static uint16_t g_counts[SG_APP_MAX_INPUTS];

/* ---------------------------------------------------------------- model */

static uint32_t n_inputs(const sg_model *m)
{
    return (uint32_t)sg_model_count_channels(m) * m->in_h * m->in_w;
}

/* This build's limits on a model the runtime accepted: 0 ok, else an sg_status. */
static int model_fits(const sg_model *m, uint32_t *offset)
{
    if (m->arena_bytes > SG_APP_ARENA_SIZE) {
        *offset = SG_HDR_OFF_ARENA;
        return SG_ERR_ARENA;
    }
    if (n_inputs(m) > SG_APP_MAX_INPUTS) {
        *offset = SG_HDR_OFF_IN_C;
        return SG_ERR_UNSUPPORTED;
    }
    if (sg_model_count_channels(m) == 0u) {
        /* tensor input: the protocol streams event counts only; point at the entry's slices */
        *offset = sg_get_u32(m->data + SG_HDR_OFF_LAYERS) + SG_QENTRY_OFF_SLICES;
        return SG_ERR_UNSUPPORTED;
    }
    return SG_OK;
}

/* Scan both slots and run the active one's model (a slot this build cannot run is invalid). */
static void load_active(void)
{
    unsigned i;
    int active;
    uint32_t off;
    g.active = -1;
    g.streaming = 0;
    memset(&g.rt, 0, sizeof g.rt);
    for (i = 0; i < SG_SLOT_COUNT; ++i) {
        sg_slot_read(i, &g.scratch, &g.slots[i]);
        if (g.slots[i].valid && model_fits(&g.scratch, &off) != SG_OK) {
            g.slots[i].valid = 0;
        }
    }
    active = sg_slots_active(g.slots);
    if (active < 0) {
        return;
    }
    i = (unsigned)active;
    if (sg_model_load(&g.model, sg_board_flash_ptr(sg_slot_data_addr(i)), g.slots[i].size) != SG_OK
        || sg_runtime_init(&g.rt, &g.model, g_arena, sizeof g_arena) != SG_OK) {
        g.slots[i].valid = 0;
        memset(&g.rt, 0, sizeof g.rt);
        return;
    }
    g.active = (int)i;
}

/* ---------------------------------------------------------------- reply helpers */

static size_t st(uint8_t *out, int status)
{
    out[0] = (uint8_t)(int8_t)status;
    return 1;
}

static size_t st_offset(uint8_t *out, int status, uint32_t expected)
{
    out[0] = (uint8_t)(int8_t)status;
    if (status != SG_DEV_ERR_OFFSET) {
        return 1;
    }
    sg_put_u32(out + 1, expected);
    return 5;
}

static size_t st_model(uint8_t *out, int sg_status_value, uint32_t error_offset)
{
    out[0] = (uint8_t)(int8_t)SG_DEV_ERR_MODEL;
    sg_put_u16(out + 1, (uint16_t)(int16_t)sg_status_value);
    sg_put_u32(out + 3, error_offset);
    return 7;
}

static size_t st_runtime(uint8_t *out, int sg_status_value)
{
    out[0] = (uint8_t)(int8_t)SG_DEV_ERR_RUNTIME;
    sg_put_u16(out + 1, (uint16_t)(int16_t)sg_status_value);
    return 3;
}

/* ---------------------------------------------------------------- device ops */

static size_t op_hello(const uint8_t *in, size_t n, uint8_t *out)
{
    const char *name = sg_board_name();
    size_t name_len = strlen(name);
    (void)in;
    if (n != 2u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    if (name_len > SG_NAME_MAX) {
        name_len = SG_NAME_MAX;
    }
    out[0] = SG_DEV_OK;
    sg_put_u16(out + 1, SG_PROTO_VERSION);
    sg_put_u32(out + 3, g.caps);
    sg_put_u16(out + 7, SG_PROTO_MAX_PAYLOAD);
    sg_board_device_id(out + 9);
    sg_put_u32(out + 17, SG_FW_VERSION);
    out[21] = (uint8_t)name_len;
    memcpy(out + 22, name, name_len);
    return 22u + name_len;
}

static size_t op_info(size_t n, uint8_t *out)
{
    sg_boot_info boot;
    uint8_t *p = out + 2;
    uint32_t cap0 = sg_slot_capacity(0), cap1 = sg_slot_capacity(1);
    unsigned i;
    if (n != 0u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    memset(&boot, 0, sizeof boot);
    sg_bootctl_info(&boot);
    out[0] = SG_DEV_OK;
    out[1] = g.active < 0 ? 0xFFu : (uint8_t)g.active;
    for (i = 0; i < SG_SLOT_COUNT; ++i) {
        p[0] = g.slots[i].valid;
        sg_put_u32(p + 1, g.slots[i].valid ? g.slots[i].generation : 0u);
        sg_put_u32(p + 5, g.slots[i].valid ? g.slots[i].size : 0u);
        sg_put_u32(p + 9, g.slots[i].valid ? g.slots[i].crc : 0u);
        p += 13;
    }
    sg_put_u32(p, SG_APP_ARENA_SIZE);
    sg_put_u32(p + 4, g.active < 0 ? 0u : (uint32_t)sg_arena_used(&g.rt));
    sg_put_u32(p + 8, cap0 < cap1 ? cap0 : cap1);
    sg_put_u32(p + 12, boot.fw_version);
    sg_put_u32(p + 16, boot.fw_crc);
    p[20] = boot.confirmed;
    p[21] = boot.state;
    sg_put_u32(p + 22, sg_board_millis());
    return (size_t)(p + 26 - out);
}

static size_t op_stats(size_t n, uint8_t *out)
{
    sg_stats s;
    uint8_t *p;
    unsigned i, hidden = 0;
    if (n != 0u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    memset(&s, 0, sizeof s);
    if (g.active >= 0) {
        sg_get_stats(&g.rt, &s);
        hidden = g.model.n_stages - 1u;
    }
    out[0] = SG_DEV_OK;
    sg_put_u64(out + 1, s.steps);
    sg_put_u64(out + 9, s.events_in);
    sg_put_u64(out + 17, s.synops);
    out[25] = (uint8_t)hidden;
    p = out + 26;
    for (i = 0; i < hidden; ++i, p += 8) {
        sg_put_u64(p, s.spikes[i]);
    }
    sg_put_u32(p, g.rx.frames_ok);
    sg_put_u32(p + 4, g.rx.frames_dropped);
    sg_put_u32(p + 8, g.busy_us);
    return (size_t)(p + 12 - out);
}

static size_t op_reset(size_t n, uint8_t *out)
{
    if (n != 0u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    g.after = SG_AFTER_RESET;
    return st(out, SG_DEV_OK);
}

static size_t op_set_baud(const uint8_t *in, size_t n, uint8_t *out)
{
    uint32_t baud;
    if (n != 4u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    if (!(g.caps & SG_CAP_BAUD)) {
        return st(out, SG_DEV_ERR_UNSUPPORTED);
    }
    baud = sg_get_u32(in);
    if (baud == 0u) {
        return st(out, SG_DEV_ERR_ARG);
    }
    /* Try the rate now, while the UART is idle, and go back: an OK must not be followed by a
     * rate the board refuses (the host would switch and lose the device). */
    sg_board_uart_flush();
    if (sg_board_uart_set_baud(baud) != 0) {
        return st(out, SG_DEV_ERR_UNSUPPORTED);
    }
    (void)sg_board_uart_set_baud(g.baud);
    g.after = SG_AFTER_BAUD; /* the reply goes out at the old rate */
    g.after_baud = baud;
    return st(out, SG_DEV_OK);
}

/* ---------------------------------------------------------------- model slots */

static size_t op_model_begin(const uint8_t *in, size_t n, uint8_t *out)
{
    const sg_flash_layout *l = sg_board_flash_layout();
    unsigned target = g.active < 0 ? 0u : 1u - (unsigned)g.active;
    uint32_t resume = 0;
    int s;
    if (n != 8u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    s = sg_upload_begin(&g.model_up, l->model[target].addr, l->model[target].size,
                        sg_slot_data_addr(target), sg_slot_capacity(target), (uint8_t)target,
                        sg_get_u32(in), sg_get_u32(in + 4), &resume);
    if (s != SG_DEV_OK) {
        return st(out, s);
    }
    /* The slot was erased (or holds part of this upload): it no longer has a model. */
    memset(&g.slots[target], 0, sizeof g.slots[target]);
    out[0] = SG_DEV_OK;
    out[1] = (uint8_t)target;
    sg_put_u32(out + 2, resume);
    return 6;
}

static size_t upload_data(sg_upload *u, const uint8_t *in, size_t n, uint8_t *out)
{
    uint32_t expected = 0;
    int s;
    if (n < 4u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    s = sg_upload_data(u, sg_get_u32(in), in + 4, n - 4u, &expected);
    if (s != SG_DEV_OK) {
        return st_offset(out, s, expected);
    }
    out[0] = SG_DEV_OK;
    sg_put_u32(out + 1, u->received);
    return 5;
}

static size_t op_model_end(size_t n, uint8_t *out)
{
    const uint8_t *data;
    uint32_t off = 0;
    int s;
    if (n != 0u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    s = sg_upload_verify(&g.model_up);
    if (s != SG_DEV_OK) {
        return st(out, s);
    }
    data = sg_board_flash_ptr(g.model_up.data_addr);
    s = sg_model_load(&g.scratch, data, g.model_up.size);
    if (s != SG_OK) {
        off = g.scratch.error_offset;
    } else {
        s = model_fits(&g.scratch, &off);
    }
    if (s != SG_OK) {
        g.model_up.state = SG_UPLOAD_IDLE; /* the same bytes would fail again */
        return st_model(out, s, off);
    }
    out[0] = SG_DEV_OK;
    out[1] = g.model_up.target;
    return 2;
}

static size_t op_model_activate(size_t n, uint8_t *out)
{
    unsigned target = g.model_up.target;
    int newest = sg_slots_active(g.slots);
    uint32_t generation;
    int s;
    if (n != 0u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    if (g.model_up.state != SG_UPLOAD_VERIFIED) {
        return st(out, SG_DEV_ERR_STATE);
    }
    /* One ahead of the newest (mod 2^32: the slot comparison wraps with it). */
    generation = (newest < 0 ? 0u : g.slots[(unsigned)newest].generation) + 1u;
    s = sg_slot_commit(target, generation, g.model_up.size, g.model_up.crc);
    g.model_up.state = SG_UPLOAD_IDLE;
    if (s != SG_DEV_OK) {
        return st(out, s);
    }
    load_active();
    if (g.active != (int)target) { /* flash changed under us: the header does not read back valid */
        return st(out, SG_DEV_ERR_FLASH);
    }
    out[0] = SG_DEV_OK;
    out[1] = (uint8_t)target;
    sg_put_u32(out + 2, generation);
    return 6;
}

static size_t op_model_read(const uint8_t *in, size_t n, uint8_t *out)
{
    unsigned slot;
    uint32_t offset;
    uint16_t count;
    if (n != 7u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    slot = in[0];
    offset = sg_get_u32(in + 1);
    count = sg_get_u16(in + 5);
    if (slot >= SG_SLOT_COUNT || count > SG_PROTO_MAX_PAYLOAD - 1u
        || (uint64_t)offset + count > sg_slot_capacity(slot)) {
        return st(out, SG_DEV_ERR_ARG);
    }
    out[0] = SG_DEV_OK;
    memcpy(out + 1, sg_board_flash_ptr(sg_slot_data_addr(slot) + offset), count);
    return 1u + count;
}

/* ---------------------------------------------------------------- firmware update */

static size_t op_fw_begin(const uint8_t *in, size_t n, uint8_t *out)
{
    const sg_flash_layout *l = sg_board_flash_layout();
    const sg_flash_region *sec = &l->app_secondary;
    /* The image is copied into primary to run: it must fit there too (208 of 256 KB on STM32F4). */
    const uint32_t cap = l->app_primary.size < sec->size ? l->app_primary.size : sec->size;
    uint32_t resume = 0;
    int s;
    if (!(g.caps & SG_CAP_FIRMWARE)) {
        return st(out, SG_DEV_ERR_UNSUPPORTED);
    }
    if (n != 8u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    s = sg_upload_begin(&g.fw_up, sec->addr, sec->size, sec->addr, cap, 0, sg_get_u32(in),
                        sg_get_u32(in + 4), &resume);
    if (s != SG_DEV_OK) {
        return st(out, s);
    }
    out[0] = SG_DEV_OK;
    sg_put_u32(out + 1, resume);
    return 5;
}

static size_t op_fw_end(size_t n, uint8_t *out)
{
    const sg_flash_layout *l = sg_board_flash_layout();
    int s;
    if (!(g.caps & SG_CAP_FIRMWARE)) {
        return st(out, SG_DEV_ERR_UNSUPPORTED);
    }
    if (n != 0u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    s = sg_upload_verify(&g.fw_up);
    if (s != SG_DEV_OK) {
        return st(out, s);
    }
    if (g.fw_up.size < SG_IMAGE_HEADER_SIZE
        || sg_image_check(l->app_secondary.addr, l->app_secondary.size,
                          l->app_primary.addr + SG_IMAGE_HEADER_SIZE) != 0) {
        g.fw_up.state = SG_UPLOAD_IDLE;
        return st(out, SG_DEV_ERR_IMAGE);
    }
    out[0] = SG_DEV_OK;
    sg_put_u32(out + 1, sg_get_u32(sg_board_flash_ptr(l->app_secondary.addr) + SG_IMAGE_OFF_VERSION));
    return 5;
}

static size_t op_fw_activate(size_t n, uint8_t *out)
{
    if (!(g.caps & SG_CAP_FIRMWARE)) {
        return st(out, SG_DEV_ERR_UNSUPPORTED);
    }
    if (n != 0u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    if (g.fw_up.state != SG_UPLOAD_VERIFIED) {
        return st(out, SG_DEV_ERR_STATE);
    }
    if (sg_bootctl_request_upgrade() != 0) {
        return st(out, SG_DEV_ERR_FLASH);
    }
    g.fw_up.state = SG_UPLOAD_IDLE;
    g.after = SG_AFTER_RESET; /* the bootloader takes over */
    return st(out, SG_DEV_OK);
}

/* ---------------------------------------------------------------- streaming */

/* Unsigned LEB128 of at most 32 bits at in[*pos]; -1 when cut short or too large. */
static int read_varint(const uint8_t *in, size_t n, size_t *pos, uint32_t *value)
{
    uint32_t v = 0;
    unsigned shift = 0;
    while (*pos < n) {
        uint8_t b = in[(*pos)++];
        if (shift == 28u && (b & 0xF0u) != 0u) {
            return -1; /* bits beyond 32, or a sixth byte */
        }
        v |= (uint32_t)(b & 0x7Fu) << shift;
        if (!(b & 0x80u)) {
            *value = v;
            return 0;
        }
        shift += 7u;
    }
    return -1;
}

enum { SG_WALK_CHECK = 0, SG_WALK_ADD = 1, SG_WALK_CLEAR = 2 };

/*
 * One step block at in[*pos] (PROTOCOL.md 3.3): varint n_pairs, then n_pairs x (varint
 * index_delta, varint count). CHECK validates it (indices in range and ascending, counts
 * 1..65535, not cut short); ADD writes its counts into g_counts; CLEAR zeroes the entries
 * it touched. Returns 0, or -1 on a malformed block (CHECK only can fail).
 */
static int walk_block(const uint8_t *in, size_t n, size_t *pos, uint32_t limit, int mode)
{
    uint32_t pairs, i, delta, count, idx = 0;
    if (read_varint(in, n, pos, &pairs) != 0 || pairs > (n - *pos) / 2u) {
        return -1; /* every pair takes at least two bytes */
    }
    for (i = 0; i < pairs; ++i) {
        if (read_varint(in, n, pos, &delta) != 0 || read_varint(in, n, pos, &count) != 0) {
            return -1;
        }
        /* idx < limit after a pair, so limit - idx cannot wrap; delta 0 would repeat an input */
        if ((i != 0u && delta == 0u) || delta >= limit - idx || count == 0u || count > 0xFFFFu) {
            return -1;
        }
        idx += delta;
        if (mode == SG_WALK_ADD) {
            g_counts[idx] = (uint16_t)count; /* strictly ascending: each input once per block */
        } else if (mode == SG_WALK_CLEAR) {
            g_counts[idx] = 0;
        }
    }
    return 0;
}

static size_t op_stream_start(const uint8_t *in, size_t n, uint8_t *out)
{
    if (n != 1u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    if (g.active < 0) {
        return st(out, SG_DEV_ERR_NO_MODEL);
    }
    sg_runtime_reset(&g.rt);
    g.streaming = 1;
    g.stream_flags = in[0];
    out[0] = SG_DEV_OK;
    sg_put_u16(out + 1, g.model.n_classes);
    sg_put_u16(out + 3, sg_model_count_channels(&g.model));
    sg_put_u16(out + 5, g.model.in_h);
    sg_put_u16(out + 7, g.model.in_w);
    sg_put_u32(out + 9, g.model.dt_us);
    return 13;
}

static size_t op_stream_steps(const uint8_t *in, size_t n, uint8_t *out)
{
    const uint32_t limit = g.active < 0 ? 0u : n_inputs(&g.model);
    const int logits = (g.stream_flags & SG_STREAM_LOGITS) != 0u;
    size_t pos = 0, o = 7;
    uint32_t steps = 0;
    if (g.active < 0) {
        return st(out, SG_DEV_ERR_NO_MODEL);
    }
    if (!g.streaming) {
        return st(out, SG_DEV_ERR_STATE);
    }
    /* Validate every block before running any, so a bad frame changes nothing. */
    while (pos < n) {
        if (walk_block(in, n, &pos, limit, SG_WALK_CHECK) != 0) {
            return st(out, SG_DEV_ERR_ARG);
        }
        steps++;
    }
    if (logits && 7u + (size_t)steps * g.model.n_classes * 4u > SG_PROTO_MAX_PAYLOAD) {
        return st(out, SG_DEV_ERR_ARG);
    }
    for (pos = 0; pos < n;) {
        size_t start = pos;
        uint32_t t0 = sg_board_micros();
        int s;
        (void)walk_block(in, n, &pos, limit, SG_WALK_ADD);
        s = sg_step(&g.rt, g_counts);
        g.busy_us += sg_board_micros() - t0;
        (void)walk_block(in, n, &start, limit, SG_WALK_CLEAR);
        if (s != SG_OK) {
            return st_runtime(out, s);
        }
        if (logits) {
            const int32_t *lg = sg_logits(&g.rt);
            unsigned c;
            for (c = 0; c < g.model.n_classes; ++c, o += 4) {
                sg_put_u32(out + o, (uint32_t)lg[c]);
            }
        }
    }
    out[0] = SG_DEV_OK;
    sg_put_u32(out + 1, g.rt.step);
    sg_put_u16(out + 5, (uint16_t)steps);
    return o;
}

static size_t op_score_from(const uint8_t *in, size_t n, uint8_t *out)
{
    int s;
    if (n != 4u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    if (g.active < 0) {
        return st(out, SG_DEV_ERR_NO_MODEL);
    }
    s = sg_score_from(&g.rt, sg_get_u32(in));
    return s == SG_OK ? st(out, SG_DEV_OK) : st_runtime(out, s);
}

static size_t op_predict(size_t n, uint8_t *out)
{
    unsigned c;
    if (n != 0u) {
        return st(out, SG_DEV_ERR_FRAME);
    }
    if (g.active < 0) {
        return st(out, SG_DEV_ERR_NO_MODEL);
    }
    out[0] = SG_DEV_OK;
    sg_put_u32(out + 1, g.rt.step);
    sg_put_u16(out + 5, (uint16_t)(int16_t)sg_prediction(&g.rt));
    for (c = 0; c < g.model.n_classes; ++c) {
        sg_put_u64(out + 7 + 8u * c, (uint64_t)g.rt.score[c]);
    }
    return 7u + 8u * g.model.n_classes;
}

/* ---------------------------------------------------------------- dispatch */

/* Execute one request; the reply payload (status first) goes to @p out. Returns its length. */
static size_t dispatch(const sg_proto_frame *f, uint8_t *out)
{
    const uint8_t *in = f->payload;
    const size_t n = f->len;
    switch (f->op) {
    case SG_OP_HELLO: return op_hello(in, n, out);
    case SG_OP_INFO: return op_info(n, out);
    case SG_OP_STATS: return op_stats(n, out);
    case SG_OP_RESET: return op_reset(n, out);
    case SG_OP_SET_BAUD: return op_set_baud(in, n, out);
    case SG_OP_MODEL_BEGIN: return op_model_begin(in, n, out);
    case SG_OP_MODEL_DATA: return upload_data(&g.model_up, in, n, out);
    case SG_OP_MODEL_END: return op_model_end(n, out);
    case SG_OP_MODEL_ACTIVATE: return op_model_activate(n, out);
    case SG_OP_MODEL_READ: return op_model_read(in, n, out);
    case SG_OP_FW_BEGIN: return op_fw_begin(in, n, out);
    case SG_OP_FW_DATA:
        return (g.caps & SG_CAP_FIRMWARE) ? upload_data(&g.fw_up, in, n, out)
                                          : st(out, SG_DEV_ERR_UNSUPPORTED);
    case SG_OP_FW_END: return op_fw_end(n, out);
    case SG_OP_FW_ACTIVATE: return op_fw_activate(n, out);
    case SG_OP_STREAM_START: return op_stream_start(in, n, out);
    case SG_OP_STREAM_STEPS: return op_stream_steps(in, n, out);
    case SG_OP_SCORE_FROM: return op_score_from(in, n, out);
    case SG_OP_PREDICT: return op_predict(n, out);
    default: return st(out, SG_DEV_ERR_OP);
    }
}

static void handle_frame(const sg_proto_frame *f)
{
    const uint8_t *cached;
    size_t n;
    if (f->op == SG_OP_HELLO) {
        sg_proto_cache_clear(&g.cache); /* a HELLO is always executed */
    } else if ((cached = sg_proto_cache_lookup(&g.cache, f->seq, f->crc, &n)) != NULL) {
        sg_board_uart_write(cached, n); /* a resent request: its reply was lost */
        return;
    }
    n = dispatch(f, g.tx + SG_PROTO_HEADER_SIZE);
    n = sg_proto_encode_reply(f->op, f->seq, g.tx, n, g.cache.frame);
    if (f->op != SG_OP_HELLO) {
        sg_proto_cache_store(&g.cache, f->seq, f->crc, g.cache.frame, n);
    }
    sg_board_uart_write(g.cache.frame, n);
}

static void after_reply(void)
{
    uint8_t what = g.after;
    g.after = SG_AFTER_NONE;
    if (what == SG_AFTER_RESET) {
        sg_board_uart_flush();
        sg_board_reset();
    } else if (what == SG_AFTER_BAUD) {
        sg_board_uart_flush();
        if (sg_board_uart_set_baud(g.after_baud) == 0) {
            g.baud = g.after_baud;
        }
    }
}

/* ---------------------------------------------------------------- public */

void sg_app_init(void)
{
    const sg_flash_layout *l;
    memset(&g, 0, sizeof g);
    memset(g_counts, 0, sizeof g_counts);
    sg_board_init();
    l = sg_board_flash_layout();
    sg_proto_rx_init(&g.rx);
    g.active = -1;
    if (sg_slot_capacity(0) != 0u && sg_slot_capacity(1) != 0u) {
        g.caps |= SG_CAP_MODEL | SG_CAP_STREAM;
    }
    if (l->app_secondary.size != 0u) {
        g.caps |= SG_CAP_FIRMWARE;
    }
    /* Setting the rate the UART already runs at tells whether the board can change it. */
    if (sg_board_uart_set_baud(SG_BOARD_BAUD) == 0) {
        g.caps |= SG_CAP_BAUD;
    }
    g.baud = SG_BOARD_BAUD;
    load_active();
    /* UART up and slots scanned: this image works, the bootloader need not revert it. */
    (void)sg_bootctl_confirm();
}

void sg_app_receive(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        sg_proto_frame f;
        if (sg_proto_rx_byte(&g.rx, data[i], &f)) {
            handle_frame(&f);
            after_reply();
        }
    }
}

void sg_app_poll(void)
{
    uint8_t buf[128];
    size_t n = sg_board_uart_read(buf, sizeof buf);
    if (n == 0u) {
        sg_board_idle();
        return;
    }
    sg_app_receive(buf, n);
}

void sg_app_run(void)
{
    for (;;) {
        sg_app_poll();
    }
}
