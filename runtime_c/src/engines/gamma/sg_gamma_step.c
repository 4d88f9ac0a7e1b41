/* SPDX-License-Identifier: MIT */
/*
 * SpikingGamma state and the phases of a step (docs/FORMAT.md §3, §4): the arena
 * carving, phase 1 (decays) and phase 3 (delay-ring slot, x, logits, encoder, spikes into
 * the next stage). Phase 2, the input, is sg_gamma_input.c (events) and sg_gamma_frames.c
 * (frames).
 */
#include <string.h>

#include "sg_gamma.h"

size_t sg_gamma_layout(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    sg_gamma_state *s = &rt->state.gamma;
    uint8_t *p = rt->arena;
    uint32_t l;
    for (l = 0; l < SG_MAX_STAGES; ++l) {
        s->z[l] = NULL;
        s->enc[l] = NULL;
        s->ring[l] = NULL;
    }
    s->counts = NULL;
    s->counted = 0;
    for (l = 0; l < m->n_stages; ++l) {
        const sg_stage *st = &m->net.gamma.stages[l];
        s->z[l] = (int32_t *)(void *)p;
        p += (size_t)4u * m->net.gamma.n_buckets * st->n_out;
        if ((st->flags & SG_FLAG_OUTPUT) == 0u) {
            s->enc[l] = (int32_t *)(void *)p;
            p += (size_t)4u * st->n_out;
        }
        if ((st->flags & SG_FLAG_DELAYS) != 0u) {
            s->ring[l] = (int32_t *)(void *)p;
            p += (size_t)4u * ((size_t)st->max_delay + 1u) * sg_gamma_ring_words(st);
        }
        if (sg_gate_of(st) > 1u) { /* the loader allows a gate on stage 0 only */
            s->counts = p;
            p += (size_t)4u * (size_t)sg_gamma_count_words(st);
        }
    }
    return (size_t)(p - rt->arena);
}

/* An event (or @p count of them) at synaptic input i of stage l in the current step:
 * into the delay ring, or scattered into bucket 0 at once. */
void sg_gamma_deliver(sg_runtime *rt, uint32_t l, uint32_t i, uint32_t count)
{
    const sg_stage *st = &rt->model->net.gamma.stages[l];
    int32_t *ring = rt->state.gamma.ring[l];
    if (ring != NULL) {
        const uint32_t slots = (uint32_t)st->max_delay + 1u;
        const uint32_t slot = (uint32_t)(((uint64_t)rt->step + st->delays[i]) % slots);
        if ((st->flags & SG_FLAG_SPIKE_RING) != 0u) {
            /* the loader allows this ring only where count is one spike (stage >= 1, pool 1),
             * and a neuron spikes once a step, so the bit is clear */
            uint32_t *w =
                (uint32_t *)(void *)ring + (size_t)slot * sg_gamma_ring_words(st) + i / 32u;
            *w |= 1u << (i % 32u);
        } else {
            int32_t *c = ring + (size_t)slot * st->n_in + i;
            *c = (int32_t)((uint32_t)*c + count);
        }
        rt->stats.synops += (uint64_t)count * sg_fanout(st, i); /* counted on arrival */
    } else {
        const uint32_t ops = st->kind == SG_KIND_DENSE
                                 ? sg_scatter_dense(st, i, count, rt->state.gamma.z[l])
                                 : sg_scatter(st, i, (int32_t)count, rt->state.gamma.z[l]);
        rt->stats.synops += (uint64_t)count * ops;
    }
}

/* The runtime was reset (the arena, and so the counts, zeroed): no event counted. */
void sg_gamma_reset(sg_runtime *rt)
{
    rt->state.gamma.counted = 0;
}

/* Phase 1: decays of every stage; the last step's input counts cleared. */
void sg_gamma_open_step(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    uint32_t l;
    if (rt->state.gamma.counted) {
        const sg_stage *st = &m->net.gamma.stages[0];
        memset(rt->state.gamma.counts, 0, (size_t)st->in_c * st->in_h * st->in_w);
        rt->state.gamma.counted = 0;
    }
    for (l = 0; l < m->n_stages; ++l) {
        sg_decay_stage(&m->net.gamma.stages[l], m->net.gamma.n_buckets, rt->state.gamma.z[l]);
    }
}

/* Spikes into a dense stage two at a time (sg_scatter_dense2: each of its states loaded
 * once per pair): pair_spike holds one input (*held; n_in: none) until its partner comes,
 * pair_last scatters the one left. Both return the synaptic events scattered. */
SG_INLINE uint32_t pair_spike(const sg_stage *st, uint32_t *held, uint32_t i, int32_t *z)
{
    if (*held == st->n_in) {
        *held = i;
        return 0u;
    }
    {
        const uint32_t ops = 2u * sg_scatter_dense2(st, *held, 1u, i, 1u, z);
        *held = st->n_in;
        return ops;
    }
}

SG_INLINE uint32_t pair_last(const sg_stage *st, uint32_t held, int32_t *z)
{
    return held != st->n_in ? sg_scatter_dense(st, held, 1u, z) : 0u;
}

/* A spike ring's slot: one event for every set bit, 32 idle inputs per word test; the
 * slot is left clear. Into a dense stage in pairs, like the undelayed spikes of phase 3d
 * (the ring's synaptic events were counted on arrival). */
static void scatter_spike_slot(const sg_stage *st, uint32_t *bits, int32_t *z)
{
    const uint32_t words = sg_gamma_ring_words(st);
    const int pairs = st->kind == SG_KIND_DENSE;
    uint32_t held = st->n_in;
    uint32_t w;
    for (w = 0; w < words; ++w) {
        uint32_t b = bits[w];
        uint32_t i = w * 32u;
        bits[w] = 0u;
        for (; b != 0u; b >>= 1, ++i) {
            if ((b & 1u) == 0u) {
                continue;
            }
            if (pairs) {
                (void)pair_spike(st, &held, i, z);
            } else {
                (void)sg_scatter(st, i, 1, z);
            }
        }
    }
    (void)pair_last(st, held, z);
}

/* Neurons whose x one call of sg_stage_x computes (128 B of stack). */
#define SG_X_CHUNK 32u

/* Phase 3 (FORMAT.md §3 step 3). */
void sg_gamma_close_step(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    const uint16_t k = m->net.gamma.n_buckets;
    uint32_t l;
    for (l = 0; l < m->n_stages; ++l) {
        const sg_stage *st = &m->net.gamma.stages[l];
        int32_t *z = rt->state.gamma.z[l];
        int32_t *ring = rt->state.gamma.ring[l];
        if (ring != NULL) { /* a. the ring slot of this step */
            const uint32_t slot = rt->step % ((uint32_t)st->max_delay + 1u);
            if ((st->flags & SG_FLAG_SPIKE_RING) != 0u) {
                scatter_spike_slot(
                    st, (uint32_t *)(void *)ring + (size_t)slot * sg_gamma_ring_words(st), z);
            } else {
                int32_t *c = ring + (size_t)slot * st->n_in;
                uint32_t i;
                for (i = 0; i < st->n_in; ++i) {
                    if (c[i] != 0) {
                        (void)sg_scatter(st, i, c[i], z);
                        c[i] = 0;
                    }
                }
            }
        }
        if ((st->flags & SG_FLAG_OUTPUT) != 0u) { /* c. output stage: logits (n_out = n_classes) */
            sg_stage_x(st, k, z, 0, st->n_out, rt->logits);
            break;
        }
        { /* d. hidden: encoder, spikes into stage l + 1; x a chunk at a time */
            const uint16_t a0 = m->net.gamma.stages[l + 1u].alpha[0];
            const uint32_t spatial = (uint32_t)st->out_h * st->out_w;
            const uint32_t n = st->n_out;
            const sg_stage *nx = &m->net.gamma.stages[l + 1u];
            /* spikes into a dense stage without pooling or delay ring go two at a time
             * (sg_scatter_dense2: each of its states loaded once per pair) */
            const int pairs =
                nx->kind == SG_KIND_DENSE && nx->pool == 1u && rt->state.gamma.ring[l + 1u] == NULL;
            uint32_t held = nx->n_in; /* none held (pair_spike); = n, pool 1 */
            int32_t *enc = rt->state.gamma.enc[l];
            uint64_t spikes = 0;
            uint32_t j0;
            for (j0 = 0; j0 < n; j0 += SG_X_CHUNK) {
                const uint32_t cnt = n - j0 < SG_X_CHUNK ? n - j0 : SG_X_CHUNK;
                int32_t xs[SG_X_CHUNK];
                int32_t *e = enc + j0;
                uint32_t c;
                sg_stage_x(st, k, z, j0, cnt, xs);
                for (c = 0; c < cnt; ++c) {
                    const int32_t y = xs[c] > 0 ? xs[c] : 0;
                    int32_t theta;
                    int32_t p;
                    if ((y | e[c]) == 0) { /* y = 0, encoder 0: no spike (theta >= 1), stays 0 */
                        continue;
                    }
                    theta = st->theta[(j0 + c) / spatial];
                    /* e >= 0 always (it starts at 0, decays towards 0 or grows by 2 theta),
                     * so p >= 0 and y - p cannot overflow; theta <= 2^29 */
                    p = e[c] != 0 ? sg_decay(e[c], a0, 0) : 0;
                    if (y - p > theta) {
                        e[c] = p > INT32_MAX - 2 * theta ? INT32_MAX : p + 2 * theta;
                        ++spikes;
                        if (pairs) {
                            rt->stats.synops +=
                                pair_spike(nx, &held, j0 + c, rt->state.gamma.z[l + 1u]);
                        } else {
                            (void)sg_gamma_route(rt, l + 1u, j0 + c, 1u);
                        }
                    } else {
                        e[c] = p;
                    }
                }
            }
            rt->stats.synops += pair_last(nx, held, rt->state.gamma.z[l + 1u]);
            rt->stats.spikes[l] += spikes;
        }
    }
}
