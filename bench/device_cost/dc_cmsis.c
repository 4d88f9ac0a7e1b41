/* SPDX-License-Identifier: MIT */
/*
 * DC_KIND_DENSE jobs run by CMSIS-NN's int8 kernels (bench/device_cost.py --kind cmsis):
 * what TFLite Micro does on a Cortex-M4 with its CMSIS-NN kernels, frame by frame, on the
 * same input tensors as dc_dense.c. This file replaces dc_dense.c in the dc_cmsis_*.elf
 * builds (same two functions, dc_dense.h); CMSIS-NN itself is compiled from a checkout
 * passed to the Makefile (CMSIS_NN=..., CMSIS_CORE=...), never kept in this repository.
 *
 * Start-up (both run and baseline jobs, so only the per-frame work differs): the weights
 * go back into TFLite's layouts (conv OHWI, fully connected [out][in]; depthwise is
 * already [1][H][W][C]), the requantisation multipliers and shifts into int32 tables (one
 * per output channel for a convolution, as CMSIS-NN takes them), and
 * each layer's scratch size is asked of CMSIS-NN (one scratch buffer, the largest).
 * dc_gesture_result.reserved carries the RAM a frame needs: the largest input + output
 * tensor pair of a layer plus the scratch buffer (the weights belong in flash).
 */
#include <string.h>

#include "arm_nnfunctions.h"
#include "dc_dense.h"
#include "dc_port.h"
#include "sg_format.h"

#ifndef DC_CMSIS_WEIGHTS
#define DC_CMSIS_WEIGHTS 65536u /* int8 weights of all layers in TFLite's layouts */
#endif
#ifndef DC_CMSIS_ACT
#define DC_CMSIS_ACT 16384u /* the largest activation tensor */
#endif
#ifndef DC_CMSIS_CHANNELS
#define DC_CMSIS_CHANNELS 2048u /* requantisation entries of all layers */
#endif
#ifndef DC_CMSIS_SCRATCH
#define DC_CMSIS_SCRATCH 16384u /* CMSIS-NN's largest per-layer scratch buffer */
#endif

static int8_t dn_weights[DC_CMSIS_WEIGHTS];
static int32_t dn_mult[DC_CMSIS_CHANNELS];
static int32_t dn_shift[DC_CMSIS_CHANNELS];
static int8_t dn_act[2][DC_CMSIS_ACT];
static int32_t dn_scratch[DC_CMSIS_SCRATCH / 4u];
static const int8_t *dn_w[SG_MAX_STAGES];
static uint32_t dn_rq[SG_MAX_STAGES]; /* first entry of the layer in dn_mult / dn_shift */
static uint32_t dn_ram;               /* bytes: largest in + out pair plus scratch */

/* CMSIS-NN's geometry and parameters of a conv or depthwise layer. */
static void dn_conv_dims(const sg_qlayer *q, cmsis_nn_dims *in, cmsis_nn_dims *f, cmsis_nn_dims *b,
                         cmsis_nn_dims *out)
{
    const cmsis_nn_dims id = {1, q->in_h, q->in_w, q->in_c};
    const cmsis_nn_dims od = {1, q->out_h, q->out_w, q->out_c};
    const cmsis_nn_dims bd = {1, 1, 1, q->out_c};
    cmsis_nn_dims fd = {q->out_c, q->kernel_h, q->kernel_w, q->filter_c};
    if (q->kind == SG_QKIND_DEPTHWISE) {
        fd.n = 1;
        fd.c = q->out_c;
    }
    *in = id;
    *f = fd;
    *b = bd;
    *out = od;
}

static cmsis_nn_conv_params dn_conv_params(const sg_qlayer *q)
{
    cmsis_nn_conv_params p;
    memset(&p, 0, sizeof p);
    p.input_offset = q->input_offset;
    p.output_offset = q->output_offset;
    p.stride.h = q->stride_h;
    p.stride.w = q->stride_w;
    p.padding.h = q->pad_top;
    p.padding.w = q->pad_left;
    p.dilation.h = q->dilation_h;
    p.dilation.w = q->dilation_w;
    p.activation.min = q->act_min;
    p.activation.max = q->act_max;
    return p;
}

static cmsis_nn_dw_conv_params dn_dw_params(const sg_qlayer *q)
{
    cmsis_nn_dw_conv_params p;
    memset(&p, 0, sizeof p);
    p.input_offset = q->input_offset;
    p.output_offset = q->output_offset;
    p.ch_mult = q->depth_multiplier;
    p.stride.h = q->stride_h;
    p.stride.w = q->stride_w;
    p.padding.h = q->pad_top;
    p.padding.w = q->pad_left;
    p.dilation.h = q->dilation_h;
    p.dilation.w = q->dilation_w;
    p.activation.min = q->act_min;
    p.activation.max = q->act_max;
    return p;
}

static cmsis_nn_pool_params dn_pool_params(const sg_qlayer *q)
{
    cmsis_nn_pool_params p;
    p.stride.h = q->stride_h;
    p.stride.w = q->stride_w;
    p.padding.h = q->pad_top;
    p.padding.w = q->pad_left;
    p.activation.min = q->act_min;
    p.activation.max = q->act_max;
    return p;
}

/* Scratch bytes CMSIS-NN asks for this layer (< 0: a layer it cannot run as given). */
static int32_t dn_scratch_size(const sg_qlayer *q)
{
    cmsis_nn_dims id, fd, bd, od;
    dn_conv_dims(q, &id, &fd, &bd, &od);
    switch (q->kind) {
    case SG_QKIND_CONV: {
        const cmsis_nn_conv_params p = dn_conv_params(q);
        return arm_convolve_wrapper_s8_get_buffer_size(&p, &id, &fd, &od); /* groups: in_c / filter_c */
    }
    case SG_QKIND_DEPTHWISE: {
        const cmsis_nn_dw_conv_params p = dn_dw_params(q);
        return arm_depthwise_conv_wrapper_s8_get_buffer_size(&p, &id, &fd, &od);
    }
    case SG_QKIND_FC: {
        const cmsis_nn_dims f2 = {q->in_c, 1, 1, q->out_c};
        return arm_fully_connected_s8_get_buffer_size(&f2);
    }
    case SG_QKIND_POOL:
        return arm_avgpool_s8_get_buffer_size(q->out_w, q->in_c);
    default:
        return -1;
    }
}

int32_t dc_dense_prepare(const sg_model *m)
{
    uint32_t used = 0, ch = 0, act = 0, scratch = 0, l;
    if (sg_model_kind(m) != SG_FORMAT_VERSION_QNET) {
        return DC_ERR_JOB;
    }
    for (l = 1; l < m->n_stages; ++l) {
        const sg_qlayer *q = &m->net.qnet.layers[l];
        const int32_t need = dn_scratch_size(q);
        /* CMSIS-NN's convolutions take one multiplier and shift per output channel: a
         * per-tensor layer's one entry is repeated */
        const uint32_t n_rq = q->kind == SG_QKIND_FC ? q->n_rq : q->n_rq == 1u ? q->out_c : q->n_rq;
        uint32_t n = 0, i;
        if (need < 0) {
            return DC_ERR_JOB;
        }
        if (q->n_out > DC_CMSIS_ACT || ch + n_rq > DC_CMSIS_CHANNELS || (uint32_t)need > DC_CMSIS_SCRATCH) {
            return DC_ERR_SPACE;
        }
        scratch = (uint32_t)need > scratch ? (uint32_t)need : scratch;
        act = q->n_in + q->n_out > act ? q->n_in + q->n_out : act;
        /* conv, FC: HWIO [t][ci][o] -> OHWI [o][t][ci] (FC: [o][i]) */
        if (q->kind == SG_QKIND_CONV || q->kind == SG_QKIND_FC) {
            const uint32_t taps = (uint32_t)q->kernel_h * q->kernel_w;
            const uint32_t fc = q->filter_c, co = q->out_c;
            uint32_t o, t, c;
            n = taps * fc * co;
            if (used + n > DC_CMSIS_WEIGHTS) {
                return DC_ERR_SPACE;
            }
            for (o = 0; o < co; ++o) {
                for (t = 0; t < taps; ++t) {
                    for (c = 0; c < fc; ++c) {
                        dn_weights[used + (o * taps + t) * fc + c] = q->weights[(t * fc + c) * co + o];
                    }
                }
            }
            dn_w[l] = dn_weights + used;
        } else {
            dn_w[l] = q->weights; /* depthwise: TFLite's own layout; pool: none */
        }
        used += n;
        for (i = 0; i < n_rq && q->n_rq > 0u; ++i) { /* pools have none */
            dn_mult[ch + i] = q->multiplier[q->n_rq == 1u ? 0u : i];
            dn_shift[ch + i] = q->shift[q->n_rq == 1u ? 0u : i];
        }
        dn_rq[l] = ch;
        ch += q->n_rq > 0u ? n_rq : 0u;
    }
    dn_ram = act + scratch;
    return 0;
}

/* One layer by CMSIS-NN; ARM_CMSIS_NN_SUCCESS or its error. */
static arm_cmsis_nn_status dn_layer(const sg_qlayer *q, uint32_t l, const int8_t *in, int8_t *out)
{
    cmsis_nn_context ctx;
    cmsis_nn_dims id, fd, bd, od;
    const cmsis_nn_per_channel_quant_params pc = {dn_mult + dn_rq[l], dn_shift + dn_rq[l]};
    ctx.buf = dn_scratch;
    ctx.size = (int32_t)sizeof dn_scratch;
    dn_conv_dims(q, &id, &fd, &bd, &od);
    switch (q->kind) {
    case SG_QKIND_CONV: {
        const cmsis_nn_conv_params p = dn_conv_params(q);
        return arm_convolve_wrapper_s8(&ctx, &p, &pc, &id, in, &fd, dn_w[l], &bd, q->bias, &od, out);
    }
    case SG_QKIND_DEPTHWISE: {
        const cmsis_nn_dw_conv_params p = dn_dw_params(q);
        return arm_depthwise_conv_wrapper_s8(&ctx, &p, &pc, &id, in, &fd, dn_w[l], &bd, q->bias, &od, out);
    }
    case SG_QKIND_FC: {
        cmsis_nn_fc_params p;
        const cmsis_nn_dims fi = {q->in_h, 1, 1, q->in_c};
        const cmsis_nn_dims ff = {q->in_c, 1, 1, q->out_c};
        const cmsis_nn_dims fo = {q->in_h, 1, 1, q->out_c};
        memset(&p, 0, sizeof p);
        p.input_offset = q->input_offset;
        p.output_offset = q->output_offset;
        p.activation.min = q->act_min;
        p.activation.max = q->act_max;
        if (q->n_rq == 1u) {
            const cmsis_nn_per_tensor_quant_params pt = {dn_mult[dn_rq[l]], dn_shift[dn_rq[l]]};
            return arm_fully_connected_s8(&ctx, &p, &pt, &fi, in, &ff, dn_w[l], &bd, q->bias, &fo, out);
        }
        return arm_fully_connected_per_channel_s8(&ctx, &p, &pc, &fi, in, &ff, dn_w[l], &bd, q->bias, &fo, out);
    }
    default: { /* SG_QKIND_POOL, the only other kind dc_dense_prepare accepts */
        const cmsis_nn_pool_params p = dn_pool_params(q);
        const cmsis_nn_dims pf = {1, q->kernel_h, q->kernel_w, 1};
        return arm_avgpool_s8(&ctx, &p, &id, in, &pf, &od, out);
    }
    }
}

/* Frame @p x through every layer; the last layer's int8 output, or NULL on an error. */
static const int8_t *dn_frame(const sg_model *m, const int8_t *x)
{
    const int8_t *in = x;
    uint32_t l;
    for (l = 1; l < m->n_stages; ++l) {
        int8_t *out = dn_act[l & 1u];
        if (dn_layer(&m->net.qnet.layers[l], l, in, out) != ARM_CMSIS_NN_SUCCESS) {
            return NULL;
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
    const uint64_t t0 = dc_ticks(); /* SysTick ticks of the gesture (the -icount cross-check) */
    for (c = 0; c < n_classes; ++c) {
        scores[c] = 0;
        logits[c] = 0;
    }
    for (f = 0; f < n_frames; ++f, x += n_in) {
        if (run) {
            const int8_t *y = dn_frame(m, x);
            if (y == NULL) {
                return DC_ERR_JOB;
            }
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
    out->reserved = dn_ram;
    out->ticks = dc_ticks() - t0;
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
