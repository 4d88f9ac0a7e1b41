/* SPDX-License-Identifier: MIT */
/*
 * Version 2 models (imported int8 networks, docs/FORMAT.md §7-10) run event-driven:
 * every tensor sends only its int8 changes; each layer keeps an int32 accumulator per
 * output and its last int8 output, and requantises only the outputs an input delta
 * reached. The arithmetic is TFLite's (sg_q_mbqm), so every step's output equals the
 * dense int8 network's output for that step's input tensor bit for bit.
 *
 * Arena (FORMAT.md §9): input tensor; with event-count input the open step's counts,
 * the slice sums and the bounded event ring; per layer acc, q, touched flags and the
 * list of touched runs. No delta lists: a changed output is scattered straight into the
 * next layer's accumulators (which only remembers which runs it touched), so the arena
 * holds no copy of any intermediate tensor.
 * This file: the arena, the delta scatter, requantisation and propagation through the
 * layers, reset, the event-count encoder, tensor input. Counting events and frames into
 * the open step: sg_qnet_input.c.
 */
#include <string.h>

#include "sg_qkernels.h"
#include "sg_qnet.h"

static size_t ceil4(size_t v)
{
    return (v + 3u) & ~(size_t)3u;
}

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

size_t sg_qnet_layout(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    const sg_qlayer *in = &m->net.qnet.layers[0];
    sg_qnet_state *st = &rt->state.qnet;
    uint8_t *p = rt->arena;
    uint32_t l;
    st->x = (int8_t *)(void *)p;
    p += ceil4(in->n_out);
    st->open = NULL;
    st->slice = NULL;
    st->ring_start = NULL;
    st->ring_count = NULL;
    st->ring = NULL;
    if (in->kernel_h >= 1u) {
        const size_t cells = (size_t)in->depth_multiplier * in->out_h * in->out_w;
        const size_t slots = (size_t)in->kernel_w + 1u;
        st->open = (uint16_t *)(void *)p;
        p += ceil4(2u * cells);
        st->slice = (uint32_t *)(void *)p;
        p += 4u * (size_t)in->kernel_h * cells;
        st->ring_start = (uint32_t *)(void *)p;
        p += 4u * slots;
        st->ring_count = (uint32_t *)(void *)p;
        p += 4u * slots;
        st->ring = (uint32_t *)(void *)p;
        p += 4u * (size_t)in->ring_entries;
    }
    for (l = 0; l < SG_MAX_STAGES; ++l) {
        st->acc[l] = NULL;
        st->q[l] = NULL;
        st->flag[l] = NULL;
        st->touched[l] = NULL;
        st->n_touched[l] = 0;
    }
    for (l = 1; l < m->n_stages; ++l) {
        const sg_qlayer *q = &m->net.qnet.layers[l];
        const size_t n = q->n_out;
        st->acc[l] = (int32_t *)(void *)p;
        p += 4u * n;
        st->q[l] = (int8_t *)(void *)p;
        p += ceil4(n);
        st->flag[l] = p;
        p += ceil4(n);
        st->touched[l] = (uint32_t *)(void *)p;
        p += 4u * (n / run_length(q));
    }
    return (size_t)(p - rt->arena);
}

/* ---------------------------------------------------------------- scatter */

/* Where a layer remembers the runs a step's deltas reached (its arena regions). */
typedef struct sg_qtouch {
    uint8_t *flag;  /**< [n_out] run start already listed */
    uint32_t *list; /**< [n_out / run] the runs */
    uint32_t *n;    /**< listed so far */
} sg_qtouch;

static sg_qtouch touch_of(sg_runtime *rt, uint32_t l)
{
    sg_qtouch t;
    t.flag = rt->state.qnet.flag[l];
    t.list = rt->state.qnet.touched[l];
    t.n = &rt->state.qnet.n_touched[l];
    return t;
}

/* The run starting at accumulator j changed: remember it once for the requantisation. */
SG_INLINE void touch(const sg_qtouch *t, uint32_t j)
{
    if (!t->flag[j]) {
        t->flag[j] = 1;
        t->list[(*t->n)++] = j;
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
static uint32_t scatter(const sg_qlayer *q, uint32_t i, int32_t d, int32_t *acc, const sg_qtouch *t)
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
            touch(t, j);
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

/* Input tensor element @p e becomes @p v: its delta goes straight into layer 1. */
SG_INLINE void set_input(sg_runtime *rt, const sg_qtouch *t1, uint32_t e, int8_t v)
{
    const int32_t d = (int32_t)v - rt->state.qnet.x[e];
    rt->state.qnet.x[e] = v;
    rt->stats.spikes[0] += 1u;
    rt->stats.synops += scatter(&rt->model->net.qnet.layers[1], e, d, rt->state.qnet.acc[1], t1);
}

/* Layer by layer: requantise the touched runs; every output that changed scatters its
 * delta straight into the next layer (the last layer's outputs are the logits). */
static void propagate(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    sg_qnet_state *st = &rt->state.qnet;
    uint64_t ops = 0;
    uint32_t l;
    for (l = 1; l < m->n_stages; ++l) {
        const sg_qlayer *q = &m->net.qnet.layers[l];
        const int has_next = l + 1u < m->n_stages;
        const sg_qlayer *next = has_next ? &m->net.qnet.layers[l + 1u] : NULL;
        const sg_qtouch t = touch_of(rt, l);
        const sg_qtouch tn = touch_of(rt, has_next ? l + 1u : l);
        int32_t *acc = st->acc[l];
        int8_t *qv = st->q[l];
        const uint32_t cnt = run_length(q);
        const uint32_t n_touched = *t.n;
        uint64_t sent = 0;
        uint32_t e;
        for (e = 0; e < n_touched; ++e) { /* each touched run, every accumulator of it */
            const uint32_t j0 = t.list[e];
            uint32_t j;
            t.flag[j0] = 0;
            for (j = j0; j < j0 + cnt; ++j) {
                const int8_t v = requant(q, j, acc[j]);
                if (v != qv[j]) {
                    if (has_next) {
                        ops += scatter(next, j, (int32_t)v - (int32_t)qv[j], st->acc[l + 1u], &tn);
                    }
                    qv[j] = v;
                    ++sent;
                }
            }
        }
        *t.n = 0;
        rt->stats.spikes[l] += sent;
    }
    rt->stats.synops += ops;
    { /* the logits: the last layer's int8 outputs */
        const sg_qlayer *last = &m->net.qnet.layers[m->n_stages - 1u];
        const int8_t *qv = st->q[m->n_stages - 1u];
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
    sg_qnet_state *st = &rt->state.qnet;
    uint32_t l;
    memset(st->x, (uint8_t)(int8_t)in->output_offset, in->n_out);
    if (st->open != NULL) { /* an empty window: no counts, no ring entries */
        const size_t cells = (size_t)in->depth_multiplier * in->out_h * in->out_w;
        memset(st->open, 0, 2u * cells);
        memset(st->slice, 0, 4u * (size_t)in->kernel_h * cells);
        memset(st->ring_count, 0, 4u * ((size_t)in->kernel_w + 1u));
        memset(st->ring_start, 0, 4u * ((size_t)in->kernel_w + 1u));
    }
    st->ring_head = 0;
    st->ring_held = 0;
    st->ring_lost = 0;
    for (l = 1; l < m->n_stages; ++l) {
        const sg_qlayer *q = &m->net.qnet.layers[l];
        const int8_t *x = l == 1u ? st->x : st->q[l - 1u];
        const int32_t base = q->kind == SG_QKIND_POOL ? 0 : -(int32_t)q->input_offset;
        const sg_qtouch t = touch_of(rt, l);
        int32_t *acc = st->acc[l];
        uint32_t j;
        for (j = 0; j < q->n_out; ++j) {
            acc[j] = q->bias != NULL ? q->bias[j % q->out_c] : 0;
            t.flag[j] = 0;
        }
        *t.n = 0;
        for (j = 0; j < q->n_in; ++j) {
            if (x[j] != base) {
                (void)scatter(q, j, (int32_t)x[j] - base, acc, &t);
            }
        }
        for (j = 0; j < q->n_out; ++j) {
            st->q[l][j] = requant(q, j, acc[j]);
            t.flag[j] = 0;
        }
        *t.n = 0;
    }
}

/* ---------------------------------------------------------------- the step */

/* The open step's cells with a count join the event ring as entries (cell | count << 16),
 * in ascending cell order; those that do not fit in the entries the W previous steps
 * leave free are lost, their events moved from events_in to events_dropped (FORMAT.md
 * §7.2). The open counts are cleared on the way. */
static void ring_push(sg_runtime *rt, uint32_t slot)
{
    const sg_qlayer *in = &rt->model->net.qnet.layers[0];
    sg_qnet_state *st = &rt->state.qnet;
    const uint32_t cells = (uint32_t)in->depth_multiplier * in->out_h * in->out_w;
    const uint32_t cap = in->ring_entries;
    const uint32_t free_n = cap - st->ring_held;
    uint32_t pos = st->ring_head;
    uint32_t n = 0;
    uint64_t lost = 0;
    uint32_t cell;
    st->ring_start[slot] = pos;
    for (cell = 0; cell < cells; ++cell) {
        const uint32_t c = st->open[cell];
        if (c == 0u) {
            continue;
        }
        st->open[cell] = 0;
        if (n < free_n) {
            st->ring[pos] = cell | c << 16;
            pos = pos + 1u == cap ? 0u : pos + 1u;
            ++n;
        } else {
            lost += c;
        }
    }
    st->ring_count[slot] = n;
    st->ring_head = pos;
    st->ring_held += n;
    if (lost != 0u) {
        st->ring_lost += lost;
        rt->stats.events_in -= lost;
        rt->stats.events_dropped += lost;
    }
}

/* Event-count encoder (FORMAT.md §7.2): slice k of step s sums steps
 * s - (S - k) L_s + 1 .. s - (S - 1 - k) L_s, so from step s - 1 to s it gains step
 * s - (S - 1 - k) L_s and loses step s - (S - k) L_s: row j = step s - j L_s (j = 0..S)
 * adds to slice S - 1 - j and leaves slice S - j. First every slice sum moves, then each
 * element those rows reach is re-read through the LUT and, if its int8 value changed,
 * scattered into layer 1 (an element reached twice changes once). */
static void encode(sg_runtime *rt)
{
    const sg_qlayer *in = &rt->model->net.qnet.layers[0];
    sg_qnet_state *st = &rt->state.qnet;
    const uint32_t n_s = in->kernel_h;
    const uint32_t slots = (uint32_t)in->kernel_w + 1u;
    const uint32_t ls = in->kernel_w / n_s;
    const uint32_t p_ch = in->depth_multiplier;
    const uint32_t hw = (uint32_t)in->out_h * in->out_w;
    const uint32_t cells = p_ch * hw;
    const uint32_t cap = in->ring_entries;
    const uint32_t cur = rt->step % slots;
    const uint32_t last = in->lut_len - 1u;
    const uint32_t in_c = in->out_c;
    const sg_qtouch t1 = touch_of(rt, 1u);
    uint32_t pass;
    uint32_t j;
    ring_push(rt, cur);
    for (pass = 0; pass < 2u; ++pass) {
        for (j = 0; j <= n_s; ++j) {
            const uint32_t slot = (cur + slots - j * ls) % slots;
            const uint32_t n = st->ring_count[slot];
            uint32_t pos = st->ring_start[slot];
            uint32_t i;
            for (i = 0; i < n; ++i) {
                const uint32_t entry = st->ring[pos];
                const uint32_t cell = entry & 0xFFFFu;
                const uint32_t c = entry >> 16;
                pos = pos + 1u == cap ? 0u : pos + 1u;
                if (pass == 0u) {
                    if (j < n_s) {
                        st->slice[(size_t)(n_s - 1u - j) * cells + cell] += c;
                    }
                    if (j >= 1u) {
                        st->slice[(size_t)(n_s - j) * cells + cell] -= c;
                    }
                } else {
                    const uint32_t p = cell / hw;
                    const uint32_t e0 =
                        (cell - p * hw) * in_c + p; /* element (y, x, k P + p), k = 0 */
                    const uint32_t k_hi = j >= 1u ? n_s - j : n_s - 1u; /* the slice it left */
                    uint32_t k = j < n_s ? n_s - 1u - j : 0u;           /* the slice it joined */
                    for (; k <= k_hi; ++k) {
                        const uint32_t sum = st->slice[(size_t)k * cells + cell];
                        const int8_t v = in->weights[sum < last ? sum : last];
                        const uint32_t e = e0 + k * p_ch;
                        if (v != st->x[e]) {
                            set_input(rt, &t1, e, v);
                        }
                    }
                }
            }
        }
    }
    { /* step s - W has left every slice: its entries are free */
        const uint32_t old = (cur + 1u) % slots;
        st->ring_held -= st->ring_count[old];
        st->ring_count[old] = 0;
    }
}

void sg_qnet_close_step(sg_runtime *rt)
{
    /* tensor input (S = 0): a step without a new tensor repeats the last one */
    if (rt->state.qnet.open != NULL) {
        encode(rt);
    }
    propagate(rt);
}

void sg_qnet_step_tensor(sg_runtime *rt, const int8_t *x)
{
    const uint32_t n_in = rt->model->net.qnet.layers[0].n_out;
    const sg_qtouch t1 = touch_of(rt, 1u);
    uint32_t i;
    for (i = 0; i < n_in; ++i) {
        if (x[i] != rt->state.qnet.x[i]) {
            set_input(rt, &t1, i, x[i]);
        }
    }
    propagate(rt);
}
