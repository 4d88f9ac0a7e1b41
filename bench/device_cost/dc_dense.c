/* SPDX-License-Identifier: MIT */
/*
 * DC_KIND_DENSE (bench/device_cost.py --kind dense): the layers of a version 2 model run
 * frame by frame by the TFLite-exact dense kernels (sg_qkernels.h, the loops of TFLite's
 * reference_integer_ops), i.e. what a frame-based int8 runtime without SIMD kernels does
 * for every frame, on the same input tensors the delta execution builds from the events.
 * The weights are put back into TFLite's layouts (conv OHWI, fully connected [out][in])
 * once at start-up, in both run and baseline jobs, so only the per-frame work differs.
 */
#include <string.h>

#include "dc_dense.h"
#include "sg_format.h"
#include "sg_qkernels.h"

#ifndef DC_DENSE_WEIGHTS
#define DC_DENSE_WEIGHTS 65536u /* int8 weights of all layers in TFLite's layouts */
#endif
#ifndef DC_DENSE_ACT
#define DC_DENSE_ACT 16384u /* the largest activation tensor */
#endif
#ifndef DC_DENSE_CHANNELS
#define DC_DENSE_CHANNELS 2048u /* requantisation shifts of all layers, as int32 */
#endif

static int8_t dd_weights[DC_DENSE_WEIGHTS];
static int32_t dd_shift[DC_DENSE_CHANNELS];
static int8_t dd_act[2][DC_DENSE_ACT];
static const int8_t *dd_w[SG_MAX_STAGES];
static const int32_t *dd_s[SG_MAX_STAGES];

int32_t dc_dense_prepare(const sg_model *m)
{
    uint32_t used = 0, ch = 0, l;
    if (sg_model_kind(m) != SG_FORMAT_VERSION_QNET) {
        return DC_ERR_JOB;
    }
    for (l = 1; l < m->n_stages; ++l) {
        const sg_qlayer *q = &m->net.qnet.layers[l];
        uint32_t n = 0, i;
        if (q->n_out > DC_DENSE_ACT || ch + q->n_rq > DC_DENSE_CHANNELS) {
            return DC_ERR_SPACE;
        }
        /* conv, FC: HWIO [t][ci][o] -> OHWI [o][t][ci] (FC: [o][i]) */
        if (q->kind == SG_QKIND_CONV || q->kind == SG_QKIND_FC) {
            const uint32_t taps = (uint32_t)q->kernel_h * q->kernel_w;
            const uint32_t fc = q->filter_c, co = q->out_c;
            uint32_t o, t, c;
            n = taps * fc * co;
            if (used + n > DC_DENSE_WEIGHTS) {
                return DC_ERR_SPACE;
            }
            for (o = 0; o < co; ++o) {
                for (t = 0; t < taps; ++t) {
                    for (c = 0; c < fc; ++c) {
                        dd_weights[used + (o * taps + t) * fc + c] = q->weights[(t * fc + c) * co + o];
                    }
                }
            }
            dd_w[l] = dd_weights + used;
        } else {
            dd_w[l] = q->weights; /* depthwise: TFLite's own layout; pool: none */
        }
        used += n;
        for (i = 0; i < q->n_rq; ++i) {
            dd_shift[ch + i] = q->shift[i];
        }
        dd_s[l] = dd_shift + ch;
        ch += q->n_rq;
    }
    return 0;
}

/* Frame @p x through every layer; the last layer's int8 output is returned. */
static const int8_t *dd_frame(const sg_model *m, const int8_t *x)
{
    const int8_t *in = x;
    uint32_t l;
    for (l = 1; l < m->n_stages; ++l) {
        const sg_qlayer *q = &m->net.qnet.layers[l];
        int8_t *out = dd_act[l & 1u];
        const sg_qdims id = {1, q->in_h, q->in_w, q->in_c};
        const sg_qdims od = {1, q->out_h, q->out_w, q->out_c};
        const sg_qrequant rq = {q->multiplier, dd_s[l], (int32_t)q->n_rq};
        if (q->kind == SG_QKIND_CONV || q->kind == SG_QKIND_DEPTHWISE) {
            const sg_qconv_params p = {q->stride_h, q->stride_w, q->dilation_h, q->dilation_w, q->pad_top,
                                       q->pad_left, q->depth_multiplier, q->input_offset, q->output_offset,
                                       q->act_min, q->act_max};
            if (q->kind == SG_QKIND_CONV) {
                const sg_qdims fd = {q->out_c, q->kernel_h, q->kernel_w, q->filter_c};
                (void)sg_q_conv2d(&p, &rq, &id, in, &fd, dd_w[l], q->bias, &od, out);
            } else {
                const sg_qdims fd = {1, q->kernel_h, q->kernel_w, q->out_c};
                (void)sg_q_depthwise_conv2d(&p, &rq, &id, in, &fd, dd_w[l], q->bias, &od, out);
            }
        } else if (q->kind == SG_QKIND_FC) {
            const sg_qfc_params p = {q->input_offset, 0, q->output_offset, q->act_min, q->act_max};
            (void)sg_q_fully_connected(&p, &rq, q->in_h, q->in_c, q->out_c, in, dd_w[l], q->bias, out);
        } else {
            const sg_qpool_params p = {q->stride_h, q->stride_w, q->kernel_h, q->kernel_w,
                                       q->pad_top, q->pad_left, q->act_min, q->act_max};
            (void)sg_q_average_pool2d(&p, &id, in, &od, out);
        }
        in = out;
    }
    return in;
}

int32_t dc_gesture_dense(const sg_model *m, const uint8_t **rec, uint32_t run, int32_t *logits,
                         int64_t *scores, dc_gesture_result *out)
{
    const uint32_t *head = (const uint32_t *)(const void *)*rec;
    const uint32_t n_frames = head[0];
    const uint32_t n_in = m->net.qnet.layers[0].n_out;
    const uint32_t n_classes = m->n_classes;
    const int8_t *x = (const int8_t *)(const void *)(head + 2);
    uint32_t h = DC_FNV_BASIS;
    uint32_t f, c;
    for (c = 0; c < n_classes; ++c) {
        scores[c] = 0;
        logits[c] = 0;
    }
    for (f = 0; f < n_frames; ++f, x += n_in) {
        if (run) {
            const int8_t *y = dd_frame(m, x);
            for (c = 0; c < n_classes; ++c) {
                logits[c] = y[c];
                scores[c] += y[c];
            }
        }
        for (c = 0; c < n_classes; ++c) {
            h = (h ^ (uint32_t)logits[c]) * DC_FNV_PRIME;
        }
    }
    out->steps = n_frames;
    out->logit_hash = h;
    out->prediction = -1;
    if (run && n_frames > 0u) {
        int32_t best = 0;
        for (c = 1; c < n_classes; ++c) {
            if (scores[c] > scores[best]) {
                best = (int32_t)c;
            }
        }
        out->prediction = best;
    }
    *rec = (const uint8_t *)(const void *)(head + 2) + (((size_t)n_frames * n_in + 3u) & ~(size_t)3u);
    return 0;
}
