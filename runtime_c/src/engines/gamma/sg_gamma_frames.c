/* SPDX-License-Identifier: MIT */
/*
 * SpikingGamma input from frames of counts (docs/FORMAT.md §3 step 2, sg_step): a frame
 * mapped onto stage 0 (pooling, polarity channels; counts the pooled grid leaves out
 * dropped and counted), each input's count scattered once, or put into stage 0's delay
 * ring. Stage 0's gate (min_count >= 2) drops each count below min_count; a frame added
 * to a step that already took events adds to their byte counts (sg_gamma_gate_add).
 * Events: sg_gamma_input.c.
 */
#include <string.h>

#include "sg_gamma.h"

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
    const uint32_t g = sg_gate_of(st);
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
    const uint32_t g = sg_gate_of(st);
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
            kept = sg_gamma_gate_add(rt, i, counts[i], sg_gate_of(st));
            if (kept != 0u) {
                (void)sg_gamma_route(rt, 0, i, kept);
            }
        }
    } else if (pool == 1u && (st->flags & SG_FLAG_PATCH) != 0u && rt->state.gamma.ring[0] == NULL) {
        pr.in = frame_patches(rt, counts);
    } else if (pool == 1u) { /* raw input = synaptic input; skip zeros four at a time */
        const uint32_t g = sg_gate_of(st);
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
        const uint32_t g = sg_gate_of(st);
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
