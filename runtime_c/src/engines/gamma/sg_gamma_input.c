/* SPDX-License-Identifier: MIT */
/*
 * SpikingGamma input from events (docs/FORMAT.md §3 step 2): the events of the open step
 * (sg_feed's runs) mapped onto stage 0 (downsampling, pooling, polarity channels; events
 * outside the grid dropped and counted), summed per synaptic input and scattered, or put
 * into stage 0's delay ring. Stage 0's gate (min_count >= 2): each event counts into a
 * byte per raw input and reaches the stage when its input's count does
 * (sg_gamma_gate_add). Frames of counts: sg_gamma_frames.c.
 */
#include "sg_gamma.h"

/* What n more events at raw input r of the open step add to the count stage 0 takes:
 * with c counted before, kept(c + n) - kept(c), kept(v) = v if v >= g else 0. The byte
 * saturates at 255 >= g, so a count that reached g is known to have. */
uint32_t sg_gamma_gate_add(sg_runtime *rt, uint32_t r, uint32_t n, uint32_t g)
{
    uint8_t *cnt = rt->state.gamma.counts + r;
    const uint32_t c = *cnt;
    const uint32_t t = c + n;
    *cnt = (uint8_t)(t > 255u ? 255u : t);
    rt->state.gamma.counted = 1u;
    if (c >= g) {
        return n;
    }
    return t >= g ? t : 0u;
}

/* Stage-0 events of one run (the events of one sg_feed call inside one step), summed per
 * synaptic input in an open-addressing table on the stack and scattered once per input:
 * wrap32 adds commute, so count x W equals count single adds exactly (FORMAT.md §3
 * step 2). The table is flushed at the end of the run, before the step can close and
 * before sg_feed returns, so the state between calls is that of one scatter per event. */
#define SG_PENDING_SLOTS 32u /* a power of two; 256 B of stack */
#define SG_PENDING_FILL 24u  /* flush at 3/4 full: probes stay short */

typedef struct sg_pending {
    uint32_t input[SG_PENDING_SLOTS];
    uint32_t count[SG_PENDING_SLOTS]; /* 0 = empty slot */
    uint32_t used;
} sg_pending;

static void pending_flush(sg_runtime *rt, sg_pending *pd)
{
    const sg_stage *st = &rt->model->net.gamma.stages[0];
    uint64_t ops = 0;
    uint32_t held = SG_PENDING_SLOTS; /* a dense input waiting for a partner */
    int32_t *z0 = rt->state.gamma.z[0];
    uint32_t h;
    if (pd->used == 0u) {
        return;
    }
    for (h = 0; h < SG_PENDING_SLOTS; ++h) {
        const uint32_t c = pd->count[h];
        if (c == 0u) {
            continue;
        }
        if (st->kind != SG_KIND_DENSE) {
            ops += (uint64_t)c * sg_scatter(st, pd->input[h], (int32_t)c, z0);
        } else if (held == SG_PENDING_SLOTS) {
            held = h;
            continue; /* its count is cleared with its partner's */
        } else {
            const uint32_t c1 = pd->count[held];
            ops += ((uint64_t)c1 + c) *
                   sg_scatter_dense2(st, pd->input[held], c1, pd->input[h], c, z0);
            pd->count[held] = 0;
            held = SG_PENDING_SLOTS;
        }
        pd->count[h] = 0;
    }
    if (held != SG_PENDING_SLOTS) {
        const uint32_t c1 = pd->count[held];
        ops += (uint64_t)c1 * sg_scatter_dense(st, pd->input[held], c1, z0);
        pd->count[held] = 0;
    }
    pd->used = 0;
    rt->stats.synops += ops;
}

SG_INLINE void pending_add(sg_runtime *rt, sg_pending *pd, uint32_t i)
{
    uint32_t h = i & (SG_PENDING_SLOTS - 1u);
    for (;;) {
        if (pd->count[h] == 0u) {
            pd->input[h] = i;
            pd->count[h] = 1u;
            if (++pd->used == SG_PENDING_FILL) {
                pending_flush(rt, pd);
            }
            return;
        }
        if (pd->input[h] == i) {
            if (++pd->count[h] == UINT32_MAX) { /* never wraps: synops stay exact */
                pending_flush(rt, pd);
            }
            return;
        }
        h = (h + 1u) & (SG_PENDING_SLOTS - 1u);
    }
}

/* Where the events of the open step go: stage 0's input mapping. */
typedef struct feed_map {
    int64_t t_lo; /* first µs of the open step */
    uint64_t dt;  /* its length */
    uint32_t f;   /* downsample x pool: sensor pixel -> synaptic row/column */
    uint32_t ds;  /* downsample: sensor pixel -> raw input row/column (the gate's counts) */
    uint32_t gate; /* gate_of stage 0 */
    uint16_t sensor_w, sensor_h, syn_h, syn_w, in_h, in_w;
    uint8_t two_ch; /* in_c = 2: the polarity is the channel */
    uint8_t pooled; /* counts go through the pending table (no delay ring) */
} feed_map;

/* Events e .. n-1 while they fall in the open step; returns the first one that does not.
 * The hot loop of sg_feed: no 64-bit division, nothing but the event and the table. */
static size_t feed_run(sg_runtime *rt, const feed_map *cx, sg_pending *pd, const sg_event *events,
                       size_t e, size_t n, size_t *in, size_t *dropped)
{
    for (; e < n; ++e) {
        const sg_event *ev = &events[e];
        uint32_t r;
        uint32_t q;
        uint32_t i;
        if (ev->t_us < cx->t_lo || (uint64_t)ev->t_us - (uint64_t)cx->t_lo >= cx->dt) {
            break; /* not in the open step */
        }
        if (ev->x >= cx->sensor_w || ev->y >= cx->sensor_h || ev->p > 1u) {
            ++*dropped;
            continue;
        }
        r = (uint32_t)ev->y / cx->f;
        q = (uint32_t)ev->x / cx->f;
        if (r >= cx->syn_h || q >= cx->syn_w) {
            ++*dropped;
            continue;
        }
        i = ((cx->two_ch ? (uint32_t)ev->p : 0u) * cx->syn_h + r) * cx->syn_w + q;
        ++*in;
        if (cx->gate > 1u) {
            const uint32_t raw = ((cx->two_ch ? (uint32_t)ev->p : 0u) * cx->in_h +
                                  (uint32_t)ev->y / cx->ds) * cx->in_w + (uint32_t)ev->x / cx->ds;
            uint32_t kept = sg_gamma_gate_add(rt, raw, 1u, cx->gate);
            if (kept > 1u) { /* the input reached the gate: its earlier events too */
                if (cx->pooled) {
                    for (; kept != 0u; --kept) {
                        pending_add(rt, pd, i);
                    }
                } else {
                    sg_gamma_deliver(rt, 0, i, kept);
                }
                continue;
            }
            if (kept == 0u) {
                continue;
            }
        }
        if (cx->pooled) {
            pending_add(rt, pd, i);
        } else {
            sg_gamma_deliver(rt, 0, i, 1u);
        }
    }
    return e;
}

size_t sg_gamma_feed(sg_runtime *rt, const sg_event *events, size_t e, size_t n, int64_t t_lo,
                     size_t *accepted, size_t *dropped)
{
    const sg_model *m = rt->model;
    const sg_stage *st = &m->net.gamma.stages[0];
    sg_pending pd;
    feed_map cx;
    /* Downsampling then stage 0's pooling, in one step: both are floor divisions, and
     * floor(floor(v / ds) / pool) = floor(v / (ds pool)); the raw row is always < in_h
     * (in_h = sensor_h / ds), so only the pooled grid can drop. */
    cx.t_lo = t_lo;
    cx.dt = m->dt_us;
    cx.f = (uint32_t)m->downsample * st->pool;
    cx.ds = m->downsample;
    cx.gate = sg_gate_of(st);
    cx.in_h = st->in_h;
    cx.in_w = st->in_w;
    cx.sensor_w = m->sensor_w;
    cx.sensor_h = m->sensor_h;
    cx.syn_h = st->syn_h;
    cx.syn_w = st->syn_w;
    cx.two_ch = m->in_c == 2u;
    cx.pooled = rt->state.gamma.ring[0] == NULL; /* a delay ring already sums counts per input */
    if (cx.pooled) {
        uint32_t h;
        for (h = 0; h < SG_PENDING_SLOTS; ++h) {
            pd.count[h] = 0;
        }
        pd.used = 0;
    }
    {
        size_t in = 0; /* counted here, not through the pointers: they stay in registers */
        size_t out = 0;
        e = feed_run(rt, &cx, &pd, events, e, n, &in, &out);
        *accepted += in;
        *dropped += out;
    }
    if (cx.pooled) {
        pending_flush(rt, &pd);
    }
    return e;
}

