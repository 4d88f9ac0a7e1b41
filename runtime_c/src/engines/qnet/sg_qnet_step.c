/* SPDX-License-Identifier: MIT */
/*
 * Version 2 models (imported int8 networks, docs/FORMAT.md §7-10) run event-driven:
 * every tensor sends only its int8 changes; each layer keeps an int32 accumulator per
 * output and its last int8 output, and requantises only the outputs an input delta
 * reached. The arithmetic is TFLite's (sg_q_mbqm), so every step's output equals the
 * dense int8 network's output for that step's input tensor bit for bit.
 *
 * Arena (FORMAT.md §9): input tensor, count ring + slice sums (event-count input),
 * per layer acc + q, then the scratch: two delta lists, the touched list and flags.
 * This file: the arena, the delta scatter, requantisation and propagation through the
 * layers, reset, the event-count encoder, tensor input. Filling the count ring with
 * events and frames: sg_qnet_input.c.
 */
#include <string.h>

#include "sg_qkernels.h"
#include "sg_qnet.h"

static size_t ceil4(size_t v)
{
    return (v + 3u) & ~(size_t)3u;
}

/* Largest tensor: the delta lists and the touched list hold at most one entry per element. */
static uint32_t qnet_n_max(const sg_model *m)
{
    uint32_t n = m->net.qnet.layers[0].n_out;
    uint32_t l;
    for (l = 1; l < m->n_stages; ++l) {
        if (m->net.qnet.layers[l].n_out > n) {
            n = m->net.qnet.layers[l].n_out;
        }
    }
    return n;
}

/** The scratch regions carved from rt->state.qnet.scratch (FORMAT.md §9). */
typedef struct sg_qscratch {
    uint32_t *idx[2];  /**< two delta lists: element indices ... */
    int32_t *d[2];     /**< ... and their deltas */
    uint32_t *touched; /**< runs of accumulators a layer's deltas reached */
    uint8_t *flag;     /**< [n_max] run already in `touched` */
} sg_qscratch;

/* Point @p s into rt->state.qnet.scratch. */
static void scratch_views(const sg_runtime *rt, sg_qscratch *s)
{
    const uint32_t n = qnet_n_max(rt->model);
    uint32_t *p = rt->state.qnet.scratch;
    s->idx[0] = p;
    s->d[0] = (int32_t *)(void *)(p + n);
    s->idx[1] = p + 2u * (size_t)n;
    s->d[1] = (int32_t *)(void *)(p + 3u * (size_t)n);
    s->touched = p + 4u * (size_t)n;
    s->flag = (uint8_t *)(void *)(p + 5u * (size_t)n);
}

size_t sg_qnet_layout(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    const sg_qlayer *in = &m->net.qnet.layers[0];
    uint8_t *p = rt->arena;
    uint32_t l;
    rt->state.qnet.x = (int8_t *)(void *)p;
    p += ceil4(in->n_out);
    rt->state.qnet.ring = NULL;
    rt->state.qnet.slice = NULL;
    if (in->kernel_h >= 1u) {
        const size_t cells = (size_t)in->depth_multiplier * in->out_h * in->out_w;
        rt->state.qnet.ring = (uint16_t *)(void *)p;
        p += ceil4(2u * ((size_t)in->kernel_w + 1u) * cells);
        rt->state.qnet.slice = (uint32_t *)(void *)p;
        p += 4u * (size_t)in->kernel_h * cells;
    }
    for (l = 0; l < SG_MAX_STAGES; ++l) {
        rt->state.qnet.acc[l] = NULL;
        rt->state.qnet.q[l] = NULL;
    }
    for (l = 1; l < m->n_stages; ++l) {
        const size_t n = m->net.qnet.layers[l].n_out;
        rt->state.qnet.acc[l] = (int32_t *)(void *)p;
        p += 4u * n;
        rt->state.qnet.q[l] = (int8_t *)(void *)p;
        p += ceil4(n);
    }
    rt->state.qnet.scratch = (uint32_t *)(void *)p;
    {
        const size_t n = qnet_n_max(m);
        p += 20u * n + ceil4(n);
    }
    return (size_t)(p - rt->arena);
}

/* ---------------------------------------------------------------- scatter */

/* Output channels one input channel reaches at one output position: a run of `run`
 * consecutive accumulators starting at channel run_start(c). A scatter always adds to a
 * whole run, so the runs, not the accumulators, are what the step remembers. */
static uint32_t run_length(const sg_qlayer *q)
{
    if (q->kind == SG_QKIND_POOL) {
        return 1u;
    }
    if (q->kind == SG_QKIND_DEPTHWISE) {
        return q->depth_multiplier;
    }
    return q->out_c / (q->in_c / q->filter_c); /* conv / FC: the output channels of a group */
}

/* The run starting at accumulator j changed: remember it once for the requantisation. */
SG_INLINE void touch(sg_qscratch *s, uint32_t *n_touched, uint32_t j)
{
    if (!s->flag[j]) {
        s->flag[j] = 1;
        s->touched[(*n_touched)++] = j;
    }
}

/* The output rows (or columns) [*lo, *hi] whose window holds input row @p y, with extent
 * ext = dil (k - 1) + 1: Y stride - pad <= y <= Y stride - pad + ext - 1. Empty: *lo > *hi.
 * Two unsigned divisions per axis and input delta instead of one per tap. */
SG_INLINE void tap_range(uint32_t y, uint32_t pad, uint32_t k, uint32_t dil, uint32_t stride,
                         uint32_t n_out, uint32_t *lo, uint32_t *hi)
{
    const uint32_t top = y + pad;                    /* <= 2 x 65535 */
    const uint64_t reach = (uint64_t)dil * (k - 1u); /* ext - 1, up to ~2^32 */
    uint32_t h = top / stride;
    /* past the comparison reach < top fits 32 bits: a 32-bit division (no libgcc call on M4) */
    *lo = (uint64_t)top <= reach ? 0u : (top - (uint32_t)reach + stride - 1u) / stride;
    *hi = h < n_out ? h : n_out - 1u;
}

/* Delta @p d at input element @p i of layer @p q: add d w to every accumulator it reaches
 * (uint32 adds, exact by the loader's bound); returns the adds (synaptic operations). */
static uint32_t scatter(const sg_qlayer *q, uint32_t i, int32_t d, int32_t *acc, sg_qscratch *s,
                        uint32_t *n_touched)
{
    const uint32_t in_c = q->in_c;
    const uint32_t pos = i / in_c;
    const uint32_t c = i - pos * in_c;
    const uint32_t y = pos / q->in_w;
    const uint32_t x = pos - y * q->in_w;
    const uint32_t c_out = q->out_c;
    const uint32_t cnt = run_length(q); /* output channels reached per tap */
    uint32_t o0;                        /* the first of them */
    size_t tap_stride;                  /* weights between taps */
    size_t w0;                          /* weights of this input channel in tap 0 */
    uint32_t ops = 0;
    uint32_t oy_lo, oy_hi, ox_lo, ox_hi, oy, ox;
    if (q->kind == SG_QKIND_POOL) {
        o0 = c;
        tap_stride = 0;
        w0 = 0;
    } else if (q->kind == SG_QKIND_DEPTHWISE) { /* w[ky][kx][c][m] -> channel c M + m */
        o0 = c * cnt;
        tap_stride = (size_t)c_out;
        w0 = o0;
    } else { /* conv and FC: w[ky][kx][ci][o], o in the group of input channel c */
        const uint32_t g = c / q->filter_c;
        o0 = g * cnt;
        tap_stride = (size_t)q->filter_c * c_out;
        w0 = (size_t)(c - g * q->filter_c) * c_out + o0;
    }
    tap_range(y, q->pad_top, q->kernel_h, q->dilation_h, q->stride_h, q->out_h, &oy_lo, &oy_hi);
    tap_range(x, q->pad_left, q->kernel_w, q->dilation_w, q->stride_w, q->out_w, &ox_lo, &ox_hi);
    for (oy = oy_lo; oy <= oy_hi; ++oy) {
        /* tap ky = (y + pad - oy stride) / dil, when that divides */
        const uint32_t ty = y + q->pad_top - oy * q->stride_h;
        const uint32_t ky = q->dilation_h == 1u ? ty : ty / q->dilation_h;
        if (q->dilation_h != 1u && ky * q->dilation_h != ty) {
            continue;
        }
        for (ox = ox_lo; ox <= ox_hi; ++ox) {
            const uint32_t tx = x + q->pad_left - ox * q->stride_w;
            const uint32_t kx = q->dilation_w == 1u ? tx : tx / q->dilation_w;
            const uint32_t j = (oy * q->out_w + ox) * c_out + o0;
            int32_t *a = acc + j;
            uint32_t m;
            if (q->dilation_w != 1u && kx * q->dilation_w != tx) {
                continue;
            }
            if (q->kind == SG_QKIND_POOL) {
                a[0] = (int32_t)((uint32_t)a[0] + (uint32_t)d);
            } else {
                const int8_t *w = q->weights + ((size_t)ky * q->kernel_w + kx) * tap_stride + w0;
                for (m = 0; m + 4u <= cnt;
                     m += 4u) { /* by four: -Os (the firmware) does not unroll */
                    a[m] = (int32_t)((uint32_t)a[m] + (uint32_t)(d * w[m]));
                    a[m + 1u] = (int32_t)((uint32_t)a[m + 1u] + (uint32_t)(d * w[m + 1u]));
                    a[m + 2u] = (int32_t)((uint32_t)a[m + 2u] + (uint32_t)(d * w[m + 2u]));
                    a[m + 3u] = (int32_t)((uint32_t)a[m + 3u] + (uint32_t)(d * w[m + 3u]));
                }
                for (; m < cnt; ++m) {
                    a[m] = (int32_t)((uint32_t)a[m] + (uint32_t)(d * w[m]));
                }
            }
            touch(s, n_touched, j);
            ops += cnt;
        }
    }
    return ops;
}

/* Image points of the window of output position (oy, ox) of a pool (>= 1 by the loader). */
static int32_t pool_count(const sg_qlayer *q, uint32_t oy, uint32_t ox)
{
    const int32_t y0 = (int32_t)(oy * q->stride_h) - (int32_t)q->pad_top;
    const int32_t x0 = (int32_t)(ox * q->stride_w) - (int32_t)q->pad_left;
    const int32_t y_lo = y0 > 0 ? y0 : 0;
    const int32_t x_lo = x0 > 0 ? x0 : 0;
    const int32_t y_hi =
        y0 + (int32_t)q->kernel_h < (int32_t)q->in_h ? y0 + (int32_t)q->kernel_h : (int32_t)q->in_h;
    const int32_t x_hi =
        x0 + (int32_t)q->kernel_w < (int32_t)q->in_w ? x0 + (int32_t)q->kernel_w : (int32_t)q->in_w;
    return (y_hi - y_lo) * (x_hi - x_lo);
}

/* int8 output j of layer q from its accumulator (FORMAT.md §8). */
static int8_t requant(const sg_qlayer *q, uint32_t j, int32_t a)
{
    int32_t v;
    const uint32_t c_out = q->out_c;
    const uint32_t pos = j / c_out;
    if (q->kind == SG_QKIND_POOL) {
        const uint32_t oy = pos / q->out_w;
        const int32_t n = pool_count(q, oy, pos - oy * q->out_w);
        /* int64: a + n / 2 can pass 2^31 at the loader's bound (|a| <= 128 n < 2^31) */
        v = (int32_t)(a > 0 ? ((int64_t)a + n / 2) / n : ((int64_t)a - n / 2) / n);
    } else {
        const uint32_t r = q->n_rq == 1u ? 0u : j - pos * c_out;
        v = sg_q_mbqm(a, q->multiplier[r], q->shift[r]) + q->output_offset;
    }
    if (v < q->act_min) {
        v = q->act_min;
    }
    if (v > q->act_max) {
        v = q->act_max;
    }
    return (int8_t)v;
}

/* ---------------------------------------------------------------- propagation */

/* The @p n deltas in list 0 through every layer; the logits. */
static void propagate(sg_runtime *rt, sg_qscratch *s, uint32_t n)
{
    const sg_model *m = rt->model;
    uint32_t cur = 0;
    uint32_t l;
    uint64_t ops = 0;
    rt->stats.spikes[0] += n;
    for (l = 1; l < m->n_stages; ++l) {
        const sg_qlayer *q = &m->net.qnet.layers[l];
        int32_t *acc = rt->state.qnet.acc[l];
        int8_t *qv = rt->state.qnet.q[l];
        const uint32_t *idx = s->idx[cur];
        const int32_t *d = s->d[cur];
        uint32_t *out_idx = s->idx[cur ^ 1u];
        int32_t *out_d = s->d[cur ^ 1u];
        const uint32_t cnt = run_length(q);
        uint32_t n_touched = 0;
        uint32_t n_out = 0;
        uint32_t e;
        for (e = 0; e < n; ++e) {
            ops += scatter(q, idx[e], d[e], acc, s, &n_touched);
        }
        for (e = 0; e < n_touched; ++e) { /* each touched run, every accumulator of it */
            const uint32_t j0 = s->touched[e];
            uint32_t j;
            s->flag[j0] = 0;
            for (j = j0; j < j0 + cnt; ++j) {
                const int8_t v = requant(q, j, acc[j]);
                if (v != qv[j]) {
                    out_idx[n_out] = j;
                    out_d[n_out] = (int32_t)v - (int32_t)qv[j];
                    ++n_out;
                    qv[j] = v;
                }
            }
        }
        rt->stats.spikes[l] += n_out;
        n = n_out;
        cur ^= 1u;
    }
    rt->stats.synops += ops;
    { /* the logits: the last layer's int8 outputs */
        const sg_qlayer *last = &m->net.qnet.layers[m->n_stages - 1u];
        const int8_t *qv = rt->state.qnet.q[m->n_stages - 1u];
        uint32_t j;
        for (j = 0; j < last->n_out; ++j) {
            rt->logits[j] = qv[j];
        }
    }
}

void sg_qnet_reset(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    const sg_qlayer *in = &m->net.qnet.layers[0];
    sg_qscratch s;
    uint32_t l;
    scratch_views(rt, &s);
    memset(rt->state.qnet.x, (uint8_t)(int8_t)in->output_offset, in->n_out);
    for (l = 1; l < m->n_stages; ++l) {
        const sg_qlayer *q = &m->net.qnet.layers[l];
        const int8_t *x = l == 1u ? rt->state.qnet.x : rt->state.qnet.q[l - 1u];
        const int32_t base = q->kind == SG_QKIND_POOL ? 0 : -(int32_t)q->input_offset;
        int32_t *acc = rt->state.qnet.acc[l];
        uint32_t n_touched = 0;
        uint32_t j;
        for (j = 0; j < q->n_out; ++j) {
            acc[j] = q->bias != NULL ? q->bias[j % q->out_c] : 0;
        }
        for (j = 0; j < q->n_in; ++j) {
            if (x[j] != base) {
                (void)scatter(q, j, (int32_t)x[j] - base, acc, &s, &n_touched);
            }
        }
        for (j = 0; j < q->n_out; ++j) {
            rt->state.qnet.q[l][j] = requant(q, j, acc[j]);
            s.flag[j] = 0;
        }
    }
}

/* ---------------------------------------------------------------- the step */

/* Event-count encoder (FORMAT.md §7.2): slice k of step s sums steps
 * s - (S - k) L_s + 1 .. s - (S - 1 - k) L_s, so from step s - 1 to s it gains step
 * s - (S - 1 - k) L_s and loses step s - (S - k) L_s: S + 1 ring rows are involved
 * (the ring's W + 1 slots keep step s - W). Only cells with a count in one of them can
 * change. Deltas of the input tensor go to list 0; list 1 (free until the first layer
 * runs, 2 n_max >= S + 1 words) holds where each of those rows starts. */
static uint32_t encode(sg_runtime *rt, sg_qscratch *s)
{
    const sg_qlayer *in = &rt->model->net.qnet.layers[0];
    const uint32_t n_s = in->kernel_h;
    const uint32_t slots = (uint32_t)in->kernel_w + 1u;
    const uint32_t ls = in->kernel_w / n_s;
    const uint32_t p_ch = in->depth_multiplier;
    const uint32_t hw = (uint32_t)in->out_h * in->out_w;
    const uint32_t cells = p_ch * hw;
    const uint32_t cur = rt->step % slots;
    const uint32_t last = in->lut_len - 1u;
    const uint32_t in_c = in->out_c;
    const uint16_t *ring = rt->state.qnet.ring;
    uint32_t *row = s->idx[1]; /* row[j]: offset of step s - j L_s (j L_s <= W < slots) */
    uint32_t n = 0;
    uint32_t cell;
    uint32_t j;
    for (j = 0; j <= n_s; ++j) {
        row[j] = ((cur + slots - j * ls) % slots) * cells;
    }
    for (cell = 0; cell < cells; ++cell) {
        uint32_t any = 0;
        uint32_t p;
        uint32_t e;
        uint32_t k;
        if ((cell & 3u) == 0u && cell + 4u <= cells) { /* skip 4 silent cells at once */
            uint64_t four = 0;
            for (j = 0; j <= n_s; ++j) {
                uint64_t v;
                memcpy(&v, ring + row[j] + cell, sizeof v);
                four |= v;
            }
            if (four == 0u) {
                cell += 3u;
                continue;
            }
        }
        for (j = 0; j <= n_s; ++j) { /* no early exit: S + 1 loads beat a branch each */
            any |= ring[row[j] + cell];
        }
        if (!any) {
            continue;
        }
        p = cell / hw;
        e = (cell - p * hw) * in_c + p; /* element (y, x, k P + p), k = 0 */
        for (k = 0; k < n_s; ++k, e += p_ch) {
            uint32_t *sum = rt->state.qnet.slice + (size_t)k * cells + cell;
            int8_t v;
            *sum = *sum + ring[row[n_s - 1u - k] + cell] - ring[row[n_s - k] + cell];
            v = in->weights[*sum < last ? *sum : last];
            if (v != rt->state.qnet.x[e]) {
                s->idx[0][n] = e;
                s->d[0][n] = (int32_t)v - rt->state.qnet.x[e];
                rt->state.qnet.x[e] = v;
                ++n;
            }
        }
    }
    return n;
}

void sg_qnet_close_step(sg_runtime *rt)
{
    sg_qscratch s;
    scratch_views(rt, &s);
    /* tensor input (S = 0): a step without a new tensor repeats the last one */
    propagate(rt, &s, rt->state.qnet.ring != NULL ? encode(rt, &s) : 0u);
}

void sg_qnet_step_tensor(sg_runtime *rt, const int8_t *x)
{
    const uint32_t n_in = rt->model->net.qnet.layers[0].n_out;
    sg_qscratch s;
    uint32_t n = 0;
    uint32_t i;
    scratch_views(rt, &s);
    for (i = 0; i < n_in; ++i) {
        if (x[i] != rt->state.qnet.x[i]) {
            s.idx[0][n] = i;
            s.d[0][n] = (int32_t)x[i] - rt->state.qnet.x[i];
            rt->state.qnet.x[i] = x[i];
            ++n;
        }
    }
    propagate(rt, &s, n);
}
