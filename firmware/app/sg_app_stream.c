/* SPDX-License-Identifier: MIT */
/*
 * The runtime on the active model (PROTOCOL.md 3.3, 3.4): STREAM_START, STREAM_STEPS
 * (step blocks decoded into one step's input counts), SCORE_FROM, PREDICT and STATS.
 * The op table refuses the stream ops without an active model.
 */
#include <string.h>

#include "sg_app_priv.h"
#include "sg_board.h"
#include "sg_proto_ops.h"

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
 * 1..65535, not cut short); ADD writes its counts into sg_app.counts; CLEAR zeroes the
 * entries it touched. Returns 0, or -1 on a malformed block (CHECK only can fail).
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
            sg_app.counts[idx] = (uint16_t)count; /* strictly ascending: each input once per block */
        } else if (mode == SG_WALK_CLEAR) {
            sg_app.counts[idx] = 0;
        }
    }
    return 0;
}

size_t sg_app_op_stream_start(const uint8_t *in, size_t n, uint8_t *out)
{
    const sg_model *m = &sg_app.model;
    (void)n;
    sg_runtime_reset(&sg_app.rt);
    sg_app.streaming = 1;
    sg_app.stream_flags = in[SG_REQ_STREAM_START_FLAGS];
    out[0] = SG_DEV_OK;
    sg_put_u16(out + SG_REPLY_STREAM_START_N_CLASSES, m->n_classes);
    sg_put_u16(out + SG_REPLY_STREAM_START_IN_C, sg_model_count_channels(m));
    sg_put_u16(out + SG_REPLY_STREAM_START_IN_H, m->in_h);
    sg_put_u16(out + SG_REPLY_STREAM_START_IN_W, m->in_w);
    sg_put_u32(out + SG_REPLY_STREAM_START_DT_US, m->dt_us);
    return SG_REPLY_STREAM_START_LEN;
}

size_t sg_app_op_stream_steps(const uint8_t *in, size_t n, uint8_t *out)
{
    const uint32_t limit = sg_app_n_inputs(&sg_app.model);
    const unsigned n_classes = sg_app.model.n_classes;
    const int logits = (sg_app.stream_flags & SG_STREAM_LOGITS) != 0u;
    size_t pos = 0, o = SG_REPLY_STREAM_STEPS_LOGITS;
    uint32_t steps = 0;
    if (!sg_app.streaming) {
        return sg_app_status(out, SG_DEV_ERR_STATE);
    }
    /* Validate every block before running any, so a bad frame changes nothing. */
    while (pos < n) {
        if (walk_block(in, n, &pos, limit, SG_WALK_CHECK) != 0) {
            return sg_app_status(out, SG_DEV_ERR_ARG);
        }
        steps++;
    }
    if (logits
        && SG_REPLY_STREAM_STEPS_LOGITS + (size_t)steps * n_classes * SG_REPLY_STREAM_STEPS_LOGITS_ITEM_LEN
               > SG_PROTO_MAX_PAYLOAD) {
        return sg_app_status(out, SG_DEV_ERR_ARG);
    }
    for (pos = 0; pos < n;) {
        size_t start = pos;
        uint32_t t0 = sg_board_micros();
        int s;
        (void)walk_block(in, n, &pos, limit, SG_WALK_ADD);
        s = sg_step(&sg_app.rt, sg_app.counts);
        sg_app.busy_us += sg_board_micros() - t0;
        (void)walk_block(in, n, &start, limit, SG_WALK_CLEAR);
        if (s != SG_OK) {
            return sg_app_status_runtime(out, s);
        }
        if (logits) {
            const int32_t *lg = sg_logits(&sg_app.rt);
            unsigned c;
            for (c = 0; c < n_classes; ++c, o += SG_REPLY_STREAM_STEPS_LOGITS_ITEM_LEN) {
                sg_put_u32(out + o, (uint32_t)lg[c]);
            }
        }
    }
    out[0] = SG_DEV_OK;
    sg_put_u32(out + SG_REPLY_STREAM_STEPS_STEP, sg_app.rt.step);
    sg_put_u16(out + SG_REPLY_STREAM_STEPS_N_STEPS, (uint16_t)steps);
    return o;
}

size_t sg_app_op_score_from(const uint8_t *in, size_t n, uint8_t *out)
{
    int s;
    (void)n;
    s = sg_score_from(&sg_app.rt, sg_get_u32(in + SG_REQ_SCORE_FROM_STEP));
    return s == SG_OK ? sg_app_status(out, SG_DEV_OK) : sg_app_status_runtime(out, s);
}

size_t sg_app_op_predict(const uint8_t *in, size_t n, uint8_t *out)
{
    uint8_t *p = out + SG_REPLY_PREDICT_SCORES;
    unsigned c;
    (void)in;
    (void)n;
    out[0] = SG_DEV_OK;
    sg_put_u32(out + SG_REPLY_PREDICT_STEP, sg_app.rt.step);
    sg_put_u16(out + SG_REPLY_PREDICT_PREDICTION, (uint16_t)(int16_t)sg_prediction(&sg_app.rt));
    for (c = 0; c < sg_app.model.n_classes; ++c, p += SG_REPLY_PREDICT_SCORES_ITEM_LEN) {
        sg_put_u64(p, (uint64_t)sg_app.rt.score[c]);
    }
    return (size_t)(p - out);
}

size_t sg_app_op_stats(const uint8_t *in, size_t n, uint8_t *out)
{
    sg_stats s;
    uint8_t *p = out + SG_REPLY_STATS_SPIKES;
    unsigned i, hidden = 0;
    (void)in;
    (void)n;
    memset(&s, 0, sizeof s);
    if (sg_app.active >= 0) {
        sg_get_stats(&sg_app.rt, &s);
        hidden = sg_app.model.n_stages - 1u;
    }
    out[0] = SG_DEV_OK;
    sg_put_u64(out + SG_REPLY_STATS_STEPS, s.steps);
    sg_put_u64(out + SG_REPLY_STATS_EVENTS_IN, s.events_in);
    sg_put_u64(out + SG_REPLY_STATS_SYNOPS, s.synops);
    out[SG_REPLY_STATS_N_HIDDEN] = (uint8_t)hidden;
    for (i = 0; i < hidden; ++i, p += SG_REPLY_STATS_SPIKES_ITEM_LEN) {
        sg_put_u64(p, s.spikes[i]);
    }
    sg_put_u32(p + SG_REPLY_STATS_TAIL_FRAMES_OK, sg_app.rx.frames_ok);
    sg_put_u32(p + SG_REPLY_STATS_TAIL_FRAMES_DROPPED, sg_app.rx.frames_dropped);
    sg_put_u32(p + SG_REPLY_STATS_TAIL_BUSY_US, sg_app.busy_us);
    return (size_t)(p - out) + SG_REPLY_STATS_TAIL_LEN;
}
