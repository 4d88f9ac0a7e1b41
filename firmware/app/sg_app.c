/* SPDX-License-Identifier: MIT */
/*
 * The device application's core: boot, the receive loop, the op table and its dispatch,
 * the replies, the actions after a reply, and the device ops (HELLO, INFO, RESET,
 * SET_BAUD). The other ops live with their role (sg_app_priv.h lists the files).
 */
#include <string.h>

#include "sg_app_priv.h"
#include "sg_board.h"
#include "sg_bootctl.h"
#include "sg_proto_ops.h"

#define SG_NAME_MAX 32u /* bytes of the board name HELLO sends at most */

/* INFO describes every slot: the reply layout and the build agree on how many there are. */
typedef char sg_app_info_slots_check[(SG_SLOT_COUNT == SG_REPLY_INFO_SLOTS_COUNT) ? 1 : -1];

sg_app_state sg_app;

/* ---------------------------------------------------------------- replies */

size_t sg_app_status(uint8_t *out, int status)
{
    out[0] = (uint8_t)(int8_t)status;
    return SG_REPLY_STATUS_SIZE;
}

size_t sg_app_status_offset(uint8_t *out, int status, uint32_t expected)
{
    out[0] = (uint8_t)(int8_t)status;
    if (status != SG_DEV_ERR_OFFSET) {
        return SG_REPLY_STATUS_SIZE;
    }
    sg_put_u32(out + SG_REPLY_ERR_OFFSET_EXPECTED_OFFSET, expected);
    return SG_REPLY_ERR_OFFSET_LEN;
}

size_t sg_app_status_model(uint8_t *out, int sg_status_value, uint32_t error_offset)
{
    out[0] = (uint8_t)(int8_t)SG_DEV_ERR_MODEL;
    sg_put_u16(out + SG_REPLY_ERR_MODEL_SG_STATUS, (uint16_t)(int16_t)sg_status_value);
    sg_put_u32(out + SG_REPLY_ERR_MODEL_ERROR_OFFSET, error_offset);
    return SG_REPLY_ERR_MODEL_LEN;
}

size_t sg_app_status_runtime(uint8_t *out, int sg_status_value)
{
    out[0] = (uint8_t)(int8_t)SG_DEV_ERR_RUNTIME;
    sg_put_u16(out + SG_REPLY_ERR_RUNTIME_SG_STATUS, (uint16_t)(int16_t)sg_status_value);
    return SG_REPLY_ERR_RUNTIME_LEN;
}

size_t sg_app_upload_data(sg_upload *u, const uint8_t *in, size_t n, uint8_t *out)
{
    uint32_t expected = 0;
    /* MODEL_DATA and FW_DATA share one request layout */
    int s = sg_upload_data(u, sg_get_u32(in + SG_REQ_MODEL_DATA_OFFSET), in + SG_REQ_MODEL_DATA_CHUNK,
                           n - SG_REQ_MODEL_DATA_CHUNK, &expected);
    if (s != SG_DEV_OK) {
        return sg_app_status_offset(out, s, expected);
    }
    out[0] = SG_DEV_OK;
    sg_put_u32(out + SG_REPLY_MODEL_DATA_NEXT_OFFSET, u->received);
    return SG_REPLY_MODEL_DATA_LEN;
}

/* ---------------------------------------------------------------- device ops */

static size_t op_hello(const uint8_t *in, size_t n, uint8_t *out)
{
    const char *name = sg_board_name();
    size_t name_len = strlen(name);
    (void)in;
    (void)n;
    if (name_len > SG_NAME_MAX) {
        name_len = SG_NAME_MAX;
    }
    out[0] = SG_DEV_OK;
    sg_put_u16(out + SG_REPLY_HELLO_VERSION, SG_PROTO_VERSION);
    sg_put_u32(out + SG_REPLY_HELLO_CAPS, sg_app.caps);
    sg_put_u16(out + SG_REPLY_HELLO_MAX_PAYLOAD, SG_PROTO_MAX_PAYLOAD);
    sg_board_device_id(out + SG_REPLY_HELLO_DEVICE_ID);
    sg_put_u32(out + SG_REPLY_HELLO_FW_VERSION, SG_FW_VERSION);
    out[SG_REPLY_HELLO_NAME_LEN] = (uint8_t)name_len;
    memcpy(out + SG_REPLY_HELLO_NAME, name, name_len);
    return SG_REPLY_HELLO_NAME + name_len;
}

static size_t op_info(const uint8_t *in, size_t n, uint8_t *out)
{
    sg_boot_info boot;
    uint8_t *p = out + SG_REPLY_INFO_SLOTS;
    uint32_t cap0 = sg_slot_capacity(0), cap1 = sg_slot_capacity(1);
    const int active = sg_app.active;
    unsigned i;
    (void)in;
    (void)n;
    memset(&boot, 0, sizeof boot);
    sg_bootctl_info(&boot);
    out[0] = SG_DEV_OK;
    out[SG_REPLY_INFO_ACTIVE_SLOT] = active < 0 ? 0xFFu : (uint8_t)active;
    for (i = 0; i < SG_SLOT_COUNT; ++i, p += SG_REPLY_INFO_SLOTS_ITEM_LEN) {
        const sg_slot_info *s = &sg_app.slots[i];
        p[SG_REPLY_INFO_SLOTS_STATE] = s->valid;
        sg_put_u32(p + SG_REPLY_INFO_SLOTS_GENERATION, s->valid ? s->generation : 0u);
        sg_put_u32(p + SG_REPLY_INFO_SLOTS_SIZE, s->valid ? s->size : 0u);
        sg_put_u32(p + SG_REPLY_INFO_SLOTS_CRC, s->valid ? s->crc : 0u);
    }
    sg_put_u32(p + SG_REPLY_INFO_TAIL_ARENA_CAPACITY, SG_APP_ARENA_SIZE);
    sg_put_u32(p + SG_REPLY_INFO_TAIL_ARENA_BYTES, active < 0 ? 0u : (uint32_t)sg_arena_used(&sg_app.rt));
    sg_put_u32(p + SG_REPLY_INFO_TAIL_SLOT_CAPACITY, cap0 < cap1 ? cap0 : cap1);
    sg_put_u32(p + SG_REPLY_INFO_TAIL_FW_VERSION, boot.fw_version);
    sg_put_u32(p + SG_REPLY_INFO_TAIL_FW_CRC, boot.fw_crc);
    p[SG_REPLY_INFO_TAIL_FW_CONFIRMED] = boot.confirmed;
    p[SG_REPLY_INFO_TAIL_BOOT_STATE] = boot.state;
    sg_put_u32(p + SG_REPLY_INFO_TAIL_UPTIME_MS, sg_board_millis());
    return (size_t)(p - out) + SG_REPLY_INFO_TAIL_LEN;
}

static size_t op_reset(const uint8_t *in, size_t n, uint8_t *out)
{
    (void)in;
    (void)n;
    sg_app.after = SG_AFTER_RESET;
    return sg_app_status(out, SG_DEV_OK);
}

static size_t op_set_baud(const uint8_t *in, size_t n, uint8_t *out)
{
    uint32_t baud;
    (void)n;
    /* after the length check: a malformed request is ERR_FRAME on every board */
    if (!(sg_app.caps & SG_CAP_BAUD)) {
        return sg_app_status(out, SG_DEV_ERR_UNSUPPORTED);
    }
    baud = sg_get_u32(in + SG_REQ_SET_BAUD_BAUD);
    if (baud == 0u) {
        return sg_app_status(out, SG_DEV_ERR_ARG);
    }
    /* Try the rate now, while the UART is idle, and go back: an OK must not be followed by a
     * rate the board refuses (the host would switch and lose the device). */
    sg_board_uart_flush();
    if (sg_board_uart_set_baud(baud) != 0) {
        return sg_app_status(out, SG_DEV_ERR_UNSUPPORTED);
    }
    (void)sg_board_uart_set_baud(sg_app.baud);
    sg_app.after = SG_AFTER_BAUD; /* the reply goes out at the old rate */
    sg_app.after_baud = baud;
    return sg_app_status(out, SG_DEV_OK);
}

/* ---------------------------------------------------------------- the op table */

/* sg_app_op.flags */
#define SG_APP_LEN_MIN 0x01u    /* items follow: len is the least payload, not the exact one */
#define SG_APP_NEED_MODEL 0x02u /* ERR_NO_MODEL without an active model */

/*
 * One row per op. The dispatcher checks, in this order: the capability (ERR_UNSUPPORTED),
 * the payload length (ERR_FRAME), the active model (ERR_NO_MODEL); then the handler runs.
 */
typedef struct sg_app_op {
    uint8_t op;    /* sg_op */
    uint8_t flags; /* SG_APP_LEN_MIN, SG_APP_NEED_MODEL */
    uint8_t len;   /* SG_REQ_<OP>_LEN (a larger one fails the build: -Woverflow) */
    uint8_t caps;  /* SG_CAP_* bits the op needs, 0 for none */
    sg_app_handler handler;
} sg_app_op;

static const sg_app_op sg_app_ops[] = {
    {SG_OP_HELLO, 0, SG_REQ_HELLO_LEN, 0, op_hello},
    {SG_OP_INFO, 0, SG_REQ_INFO_LEN, 0, op_info},
    {SG_OP_STATS, 0, SG_REQ_STATS_LEN, 0, sg_app_op_stats},
    {SG_OP_RESET, 0, SG_REQ_RESET_LEN, 0, op_reset},
    {SG_OP_SET_BAUD, 0, SG_REQ_SET_BAUD_LEN, 0, op_set_baud},
    {SG_OP_MODEL_BEGIN, 0, SG_REQ_MODEL_BEGIN_LEN, 0, sg_app_op_model_begin},
    {SG_OP_MODEL_DATA, SG_APP_LEN_MIN, SG_REQ_MODEL_DATA_LEN, 0, sg_app_op_model_data},
    {SG_OP_MODEL_END, 0, SG_REQ_MODEL_END_LEN, 0, sg_app_op_model_end},
    {SG_OP_MODEL_ACTIVATE, 0, SG_REQ_MODEL_ACTIVATE_LEN, 0, sg_app_op_model_activate},
    {SG_OP_MODEL_READ, 0, SG_REQ_MODEL_READ_LEN, 0, sg_app_op_model_read},
    {SG_OP_MODEL_SELECT, 0, SG_REQ_MODEL_SELECT_LEN, 0, sg_app_op_model_select},
    {SG_OP_FW_BEGIN, 0, SG_REQ_FW_BEGIN_LEN, SG_CAP_FIRMWARE, sg_app_op_fw_begin},
    {SG_OP_FW_DATA, SG_APP_LEN_MIN, SG_REQ_FW_DATA_LEN, SG_CAP_FIRMWARE, sg_app_op_fw_data},
    {SG_OP_FW_END, 0, SG_REQ_FW_END_LEN, SG_CAP_FIRMWARE, sg_app_op_fw_end},
    {SG_OP_FW_ACTIVATE, 0, SG_REQ_FW_ACTIVATE_LEN, SG_CAP_FIRMWARE, sg_app_op_fw_activate},
    {SG_OP_STREAM_START, SG_APP_NEED_MODEL, SG_REQ_STREAM_START_LEN, 0, sg_app_op_stream_start},
    {SG_OP_STREAM_STEPS, SG_APP_LEN_MIN | SG_APP_NEED_MODEL, SG_REQ_STREAM_STEPS_LEN, 0,
     sg_app_op_stream_steps},
    {SG_OP_SCORE_FROM, SG_APP_NEED_MODEL, SG_REQ_SCORE_FROM_LEN, 0, sg_app_op_score_from},
    {SG_OP_PREDICT, SG_APP_NEED_MODEL, SG_REQ_PREDICT_LEN, 0, sg_app_op_predict},
};

/* Execute one request; the reply payload (status first) goes to @p out. Returns its length. */
static size_t dispatch(const sg_proto_frame *f, uint8_t *out)
{
    const sg_app_op *row = NULL;
    size_t i;
    for (i = 0; i < sizeof sg_app_ops / sizeof sg_app_ops[0]; ++i) {
        if (sg_app_ops[i].op == f->op) {
            row = &sg_app_ops[i];
            break;
        }
    }
    if (row == NULL) {
        return sg_app_status(out, SG_DEV_ERR_OP);
    }
    if ((sg_app.caps & row->caps) != row->caps) {
        return sg_app_status(out, SG_DEV_ERR_UNSUPPORTED);
    }
    if ((row->flags & SG_APP_LEN_MIN) ? f->len < row->len : f->len != row->len) {
        return sg_app_status(out, SG_DEV_ERR_FRAME);
    }
    if ((row->flags & SG_APP_NEED_MODEL) && sg_app.active < 0) {
        return sg_app_status(out, SG_DEV_ERR_NO_MODEL);
    }
    return row->handler(f->payload, f->len, out);
}

static void handle_frame(const sg_proto_frame *f)
{
    const uint8_t *cached;
    size_t n;
    if (f->op == SG_OP_HELLO) {
        sg_proto_cache_clear(&sg_app.cache); /* a HELLO is always executed */
    } else if ((cached = sg_proto_cache_lookup(&sg_app.cache, f->seq, f->crc, &n)) != NULL) {
        sg_board_uart_write(cached, n); /* a resent request: its reply was lost */
        return;
    }
    n = dispatch(f, sg_app.tx + SG_PROTO_HEADER_SIZE);
    n = sg_proto_encode_reply(f->op, f->seq, sg_app.tx, n, sg_app.cache.frame);
    if (f->op != SG_OP_HELLO) {
        sg_proto_cache_store(&sg_app.cache, f->seq, f->crc, sg_app.cache.frame, n);
    }
    sg_board_uart_write(sg_app.cache.frame, n);
}

static void after_reply(void)
{
    uint8_t what = sg_app.after;
    sg_app.after = SG_AFTER_NONE;
    if (what == SG_AFTER_RESET) {
        sg_board_uart_flush();
        sg_board_reset();
    } else if (what == SG_AFTER_BAUD) {
        sg_board_uart_flush();
        if (sg_board_uart_set_baud(sg_app.after_baud) == 0) {
            sg_app.baud = sg_app.after_baud;
        }
    }
}

/* ---------------------------------------------------------------- public */

void sg_app_init(void)
{
    const sg_flash_layout *l;
    memset(&sg_app, 0, sizeof sg_app);
    sg_board_init();
    l = sg_board_flash_layout();
    sg_proto_rx_init(&sg_app.rx);
    sg_app.active = -1;
    if (sg_slot_capacity(0) != 0u && sg_slot_capacity(1) != 0u) {
        sg_app.caps |= SG_CAP_MODEL | SG_CAP_STREAM;
    }
    if (l->app_secondary.size != 0u) {
        sg_app.caps |= SG_CAP_FIRMWARE;
    }
    /* Setting the rate the UART already runs at tells whether the board can change it. */
    if (sg_board_uart_set_baud(SG_BOARD_BAUD) == 0) {
        sg_app.caps |= SG_CAP_BAUD;
    }
    sg_app.baud = SG_BOARD_BAUD;
    sg_app_load_active();
    /* UART up and slots scanned: this image works, the bootloader need not revert it. */
    (void)sg_bootctl_confirm();
}

void sg_app_receive(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        sg_proto_frame f;
        if (sg_proto_rx_byte(&sg_app.rx, data[i], &f)) {
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
