/* SPDX-License-Identifier: MIT */
/*
 * SpikingGamma input (docs/FORMAT.md §3 step 2): events of the open step (sg_feed's runs)
 * and frames of counts (sg_step) mapped onto stage 0 (downsampling, pooling, polarity
 * channels; events outside the grid dropped and counted), summed per synaptic input and
 * scattered, or put into stage 0's delay ring. Stage 0's gate (min_count >= 2) drops an
 * input's count of the step below min_count: frames test each count; events count into a
 * byte per input and reach the stage when their input's count does (gate_add).
 */
#include <string.h>

#include "sg_gamma.h"

/* The smallest count of a step stage 0 keeps (1: every count). */
SG_INLINE uint32_t gate_of(const sg_stage *st)
{
    return st->min_count >= 2u ? st->min_count : 1u;
}

/* A frame's count v as stage 0 takes it: 0 below the gate g. */
#define SG_GATED(v, g) ((v) >= (g) ? (v) : 0u)

/* What n more events at raw input r of the open step add to the count stage 0 takes:
 * with c counted before, kept(c + n) - kept(c), kept(v) = v if v >= g else 0. The byte
 * saturates at 255 >= g, so a count that reached g is known to have. */
static uint32_t gate_add(sg_runtime *rt, uint32_t r, uint32_t n, uint32_t g)
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
            uint32_t kept = gate_add(rt, raw, 1u, cx->gate);
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
    cx.gate = gate_of(st);
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

/* The inputs of a frame reach a dense stage 0 without a delay ring two at a time
 * (sg_scatter_dense2); anything else goes through deliver. The events taken and dropped
 * are counted here, beside the held input, not in registers of the frame loops, which
 * need every one (-Os would otherwise reload the loop bound from the stack per window). */
typedef struct sg_pair {
    uint32_t input;
    uint32_t count; /* 0: no input held */
    int direct;
    uint64_t in;      /* events accepted */
    uint64_t dropped; /* and dropped (outside the pooled grid) */
} sg_pair;

static void frame_add(sg_runtime *rt, sg_pair *pr, uint32_t i, uint32_t count)
{
    const sg_stage *st = &rt->model->net.gamma.stages[0];
    pr->in += count;
    if (!pr->direct) {
        sg_gamma_deliver(rt, 0, i, count);
    } else if (pr->count == 0u) {
        pr->input = i;
        pr->count = count;
    } else {
        rt->stats.synops +=
            ((uint64_t)pr->count + count) *
            sg_scatter_dense2(st, pr->input, pr->count, i, count, rt->state.gamma.z[0]);
        pr->count = 0;
    }
}

static void frame_add_end(sg_runtime *rt, sg_pair *pr)
{
    if (pr->count != 0u) {
        sg_gamma_deliver(rt, 0, pr->input, pr->count);
        pr->count = 0;
    }
}

/* One channel of a frame through stage 0's floor sum pooling (2 <= pool <= 256: a
 * window's sum, <= 256^2 x 65535, fits uint32), synaptic inputs from @p i on; returns the
 * next. A function of its own, not inlined, so the window loops get the registers:
 * inlined, -Os reloads a loop bound from the stack at every window. */
static SG_NOINLINE uint32_t frame_plane(sg_runtime *rt, sg_pair *pr, const uint16_t *plane,
                                        uint32_t i)
{
    const sg_stage *st = &rt->model->net.gamma.stages[0];
    const uint32_t g = gate_of(st);
    const uint32_t pool = st->pool;
    const uint32_t in_h = st->in_h;
    const uint32_t in_w = st->in_w;
    const uint32_t used_h = (uint32_t)st->syn_h * pool;
    const uint32_t used_w = (uint32_t)st->syn_w * pool;
    uint32_t r;
    uint32_t q;
    for (r = 0; r < used_h; r += pool) {
        const uint16_t *row = plane + (size_t)r * in_w;
        if (pool == 2u) { /* the common case: two rows, column pairs */
            const uint16_t *px = row;
            uint32_t k;
            for (k = used_w / 2u; k != 0u; --k, px += 2, ++i) { /* counted down: one register */
                /* two counts per 32-bit load (memcpy: any alignment, no aliasing); an
                 * empty window, the common case, costs one test */
                uint32_t a;
                uint32_t b;
                memcpy(&a, px, sizeof a);
                memcpy(&b, px + in_w, sizeof b);
                if ((a | b) != 0u) {
                    uint32_t sum = (a & 0xFFFFu) + (a >> 16) + (b & 0xFFFFu) + (b >> 16);
                    if (g > 1u) { /* the gate: counts below g dropped, still accepted */
                        const uint32_t kept = SG_GATED(a & 0xFFFFu, g) + SG_GATED(a >> 16, g) +
                                              SG_GATED(b & 0xFFFFu, g) + SG_GATED(b >> 16, g);
                        pr->in += sum - kept;
                        sum = kept;
                    }
                    if (sum != 0u) {
                        frame_add(rt, pr, i, sum);
                    }
                }
            }
            q = used_w;
        } else {
            for (q = 0; q < used_w; q += pool, ++i) {
                const uint16_t *px = row + q;
                uint32_t sum = 0;
                uint32_t dr;
                uint32_t dq;
                for (dr = 0; dr < pool; ++dr, px += in_w) {
                    for (dq = 0; dq < pool; ++dq) {
                        const uint32_t v = px[dq];
                        const uint32_t kept = SG_GATED(v, g);
                        pr->in += v - kept;
                        sum += kept;
                    }
                }
                if (sum != 0u) {
                    frame_add(rt, pr, i, sum);
                }
            }
        }
        for (; q < in_w; ++q) { /* columns floor pooling drops */
            uint32_t dr;
            for (dr = 0; dr < pool; ++dr) {
                pr->dropped += row[(size_t)dr * in_w + q];
            }
        }
    }
    for (; r < in_h; ++r) { /* rows floor pooling drops */
        for (q = 0; q < in_w; ++q) {
            pr->dropped += plane[(size_t)r * in_w + q];
        }
    }
    return i;
}

/* The nonzero inputs of one patch are held (tap, count) and scattered together
 * (sg_patch_scatter: two at a time); an even number of slots, so only the last flush of
 * a patch can leave one alone, and their counts sum within uint32. */
#define SG_PATCH_SLOTS 16u

/* Holds input tap t of count v (if v >= g, the gate; else counts it accepted), flushing a
 * full table. */
#define PATCH_TAKE(v, t)                                                                           \
    do {                                                                                           \
        if ((v) >= g) {                                                                            \
            hp[0] = (t);                                                                           \
            hp[1] = (v);                                                                           \
            hp += 2;                                                                               \
            if (hp == held + 2u * SG_PATCH_SLOTS) {                                                \
                reached += sg_patch_scatter(st, held, SG_PATCH_SLOTS, zt);                         \
                hp = held;                                                                         \
            }                                                                                      \
        } else {                                                                                   \
            rest += (v); /* below the gate (or 0): accepted, not scattered */                      \
        }                                                                                          \
    } while (0)

/* Stage-0 input of a frame into a patch conv (SG_FLAG_PATCH, pool 1, no delay ring):
 * output position by position, the nonzero counts of its syn_c x k x k inputs, no
 * division. Rows and columns past the last patch reach no neuron: accepted with 0
 * synaptic ops, as sg_scatter gives them. Returns the events accepted. */
static SG_NOINLINE uint64_t frame_patches(sg_runtime *rt, const uint16_t *counts)
{
    const sg_stage *st = &rt->model->net.gamma.stages[0];
    const uint32_t k = st->kernel;
    const uint32_t in_w = st->in_w;
    const uint32_t used_h = (uint32_t)st->out_h * k;
    const uint32_t used_w = (uint32_t)st->out_w * k;
    const size_t plane = (size_t)st->in_h * in_w;
    const size_t span = (size_t)k * in_w; /* the rows of one patch */
    const uint32_t g = gate_of(st);
    int32_t *zt = rt->state.gamma.z[0];
    uint64_t reached = 0; /* events scattered inside patches */
    uint64_t rest = 0;    /* and outside, or below the gate */
    uint32_t held[2u * SG_PATCH_SLOTS];
    uint32_t *hp = held;
    uint32_t r;
    uint32_t q;
    uint32_t c;
    for (r = 0; r < used_h; r += k) {
        for (q = 0; q < used_w; q += k, ++zt) { /* zt: this output position's state */
            const uint16_t *p0 = counts + (size_t)r * in_w + q;
            uint32_t t = 0; /* tap (c k + ki) k + kj of the row's first input */
            for (c = 0; c < st->syn_c; ++c, p0 += plane) {
                const uint16_t *px = p0;
                const uint16_t *stop = p0 + span;
                if (k == 4u) { /* the gesture model's kernel: four counts in two loads */
                    for (; px != stop; px += in_w, t += 4u) {
                        uint32_t a;
                        uint32_t b;
                        memcpy(&a, px, sizeof a);
                        memcpy(&b, px + 2, sizeof b);
                        if ((a | b) == 0u) {
                            continue; /* an empty row, the common case, costs one test */
                        }
                        PATCH_TAKE(a & 0xFFFFu, t);
                        PATCH_TAKE(a >> 16, t + 1u);
                        PATCH_TAKE(b & 0xFFFFu, t + 2u);
                        PATCH_TAKE(b >> 16, t + 3u);
                    }
                } else {
                    for (; px != stop; px += in_w, t += k) {
                        uint32_t kj;
                        for (kj = 0; kj < k; ++kj) {
                            PATCH_TAKE((uint32_t)px[kj], t + kj);
                        }
                    }
                }
            }
            if (hp != held) {
                reached += sg_patch_scatter(st, held, (uint32_t)(hp - held) / 2u, zt);
                hp = held;
            }
        }
    }
    for (c = 0; c < st->syn_c; ++c) { /* the inputs no patch covers */
        const uint16_t *pc = counts + c * plane;
        for (r = 0; r < st->in_h; ++r) {
            for (q = r < used_h ? used_w : 0u; q < in_w; ++q) {
                rest += pc[(size_t)r * in_w + q];
            }
        }
    }
    rt->stats.synops += reached * st->out_c;
    return reached + rest;
}

#undef PATCH_TAKE

/* Stage-0 input of a dense frame (FORMAT.md §3 step 2). The counts of the pixels that
 * pool into one synaptic input are summed and scattered once: wrap32 adds commute,
 * so count_a W + count_b W = (count_a + count_b) W exactly. */
void sg_gamma_add_counts(sg_runtime *rt, const uint16_t *counts)
{
    const sg_stage *st = &rt->model->net.gamma.stages[0];
    const uint32_t pool = st->pool;
    const uint32_t plane = (uint32_t)st->in_h * st->in_w;
    const uint32_t n_raw = st->in_c * plane;
    sg_pair pr;
    uint32_t i;
    pr.input = 0;
    pr.count = 0;
    pr.in = 0;
    pr.dropped = 0;
    pr.direct = st->kind == SG_KIND_DENSE && rt->state.gamma.ring[0] == NULL;
    if (rt->state.gamma.counted) {
        /* events of this step were counted (sg_feed, then sg_step): the frame's counts
         * add to theirs, input by input, through the gate's byte counts */
        for (i = 0; i < n_raw; ++i) {
            uint32_t kept;
            if (counts[i] == 0u) {
                continue;
            }
            if (pool > 1u && sg_pool_index(st, i) < 0) {
                pr.dropped += counts[i];
                continue;
            }
            pr.in += counts[i];
            kept = gate_add(rt, i, counts[i], gate_of(st));
            if (kept != 0u) {
                (void)sg_gamma_route(rt, 0, i, kept);
            }
        }
    } else if (pool == 1u && (st->flags & SG_FLAG_PATCH) != 0u && rt->state.gamma.ring[0] == NULL) {
        pr.in = frame_patches(rt, counts);
    } else if (pool == 1u) { /* raw input = synaptic input; skip zeros four at a time */
        const uint32_t g = gate_of(st);
        const uint32_t n4 = n_raw & ~3u;
        for (i = 0; i < n4; i += 4u) {
            if ((counts[i] | counts[i + 1u] | counts[i + 2u] | counts[i + 3u]) != 0u) {
                uint32_t b;
                for (b = i; b < i + 4u; ++b) {
                    if (counts[b] >= g) {
                        frame_add(rt, &pr, b, counts[b]);
                    } else {
                        pr.in += counts[b]; /* below the gate: accepted, not scattered */
                    }
                }
            }
        }
        for (; i < n_raw; ++i) {
            if (counts[i] >= g) {
                frame_add(rt, &pr, i, counts[i]);
            } else {
                pr.in += counts[i];
            }
        }
    } else if (pool <= 256u) {
        uint32_t c;
        i = 0; /* synaptic input index, channel-major */
        for (c = 0; c < st->in_c; ++c) {
            i = frame_plane(rt, &pr, counts + (size_t)c * plane, i);
        }
    } else {
        const uint32_t g = gate_of(st);
        for (i = 0; i < n_raw; ++i) {
            if (counts[i] != 0u) {
                if (sg_pool_index(st, i) < 0) {
                    pr.dropped += counts[i];
                } else {
                    pr.in += counts[i];
                    if (counts[i] >= g) {
                        (void)sg_gamma_route(rt, 0, i, counts[i]);
                    }
                }
            }
        }
    }
    frame_add_end(rt, &pr);
    rt->stats.events_in += pr.in;
    rt->stats.events_dropped += pr.dropped;
}
