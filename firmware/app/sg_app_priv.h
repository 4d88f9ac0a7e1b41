/* SPDX-License-Identifier: MIT */
/*
 * The application's private interface: its RAM state, the op handlers each file owns,
 * and the reply helpers they share. One file per role:
 *
 *   sg_app.c         boot, the receive loop, the op table and dispatch, replies and the
 *                    actions after a reply; the device ops HELLO, INFO, RESET, SET_BAUD
 *   sg_app_model.c   the model slots: scan and activate at boot, MODEL_BEGIN/DATA/END/
 *                    ACTIVATE/READ, what this build can run
 *   sg_app_fw.c      the firmware update: FW_BEGIN/DATA/END/ACTIVATE
 *   sg_app_stream.c  the runtime: STREAM_START/STEPS, SCORE_FROM, PREDICT, STATS
 *
 * Payload offsets and lengths are the SG_REQ_* and SG_REPLY_* macros of sg_proto_ops.h,
 * generated from pysg/device/ops.py.
 */
#ifndef SG_APP_PRIV_H
#define SG_APP_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "sg_app.h"
#include "sg_proto.h"
#include "sg_runtime.h"
#include "sg_slots.h"

/** What to do once the reply is sent. */
enum { SG_AFTER_NONE = 0, SG_AFTER_RESET = 1, SG_AFTER_BAUD = 2 };

/** All RAM state of the application; sg_app_init() zeroes it (a reset loses it). */
typedef struct sg_app_state {
    sg_proto_rx rx;
    sg_proto_cache cache;
    uint8_t tx[SG_PROTO_PACKET_MAX];
    sg_slot_info slots[SG_SLOT_COUNT];
    int active;            /**< slot the runtime runs, -1 without a model */
    sg_model model;        /**< the active model, in place in its slot */
    sg_model scratch;      /**< models being checked (scan, END) */
    sg_runtime rt;
    uint8_t streaming;     /**< STREAM_START since the model was loaded */
    uint8_t stream_flags;
    uint32_t caps;
    sg_upload model_up;
    sg_upload fw_up;
    uint32_t busy_us;
    uint8_t after;         /**< SG_AFTER_*: what to do once the reply is sent */
    uint32_t after_baud;
    uint32_t baud;         /**< the UART rate now (SET_BAUD returns to it after its probe) */
    uint16_t counts[SG_APP_MAX_INPUTS]; /**< one step's input counts, zero between steps */
} sg_app_state;

extern sg_app_state sg_app;

/**
 * An op handler: @p n payload bytes at @p in, already checked against the op's table row
 * (capability, length, active model); writes the reply payload (status first) to @p out
 * and returns its length.
 */
typedef size_t (*sg_app_handler)(const uint8_t *in, size_t n, uint8_t *out);

/* ---- replies (sg_app.c) */

/** A reply of just @p status. */
size_t sg_app_status(uint8_t *out, int status);

/** @p status; ERR_OFFSET carries the offset the device expects. */
size_t sg_app_status_offset(uint8_t *out, int status, uint32_t expected);

/** ERR_MODEL with the runtime's status and the byte offset of the first bad field. */
size_t sg_app_status_model(uint8_t *out, int sg_status_value, uint32_t error_offset);

/** ERR_RUNTIME with the runtime's status. */
size_t sg_app_status_runtime(uint8_t *out, int sg_status_value);

/** MODEL_DATA / FW_DATA into upload @p u: program the chunk, reply with the next offset. */
size_t sg_app_upload_data(sg_upload *u, const uint8_t *in, size_t n, uint8_t *out);

/* ---- model slots (sg_app_model.c) */

/** Inputs of one step of @p m: count channels x in_h x in_w. */
uint32_t sg_app_n_inputs(const sg_model *m);

/** Scan both slots and run the active one's model (a slot this build cannot run is invalid). */
void sg_app_load_active(void);

size_t sg_app_op_model_begin(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_model_data(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_model_end(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_model_activate(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_model_read(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_model_select(const uint8_t *in, size_t n, uint8_t *out);

/* ---- firmware update (sg_app_fw.c) */

size_t sg_app_op_fw_begin(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_fw_data(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_fw_end(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_fw_activate(const uint8_t *in, size_t n, uint8_t *out);

/* ---- the runtime (sg_app_stream.c) */

size_t sg_app_op_stream_start(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_stream_steps(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_score_from(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_predict(const uint8_t *in, size_t n, uint8_t *out);
size_t sg_app_op_stats(const uint8_t *in, size_t n, uint8_t *out);

#endif /* SG_APP_PRIV_H */
