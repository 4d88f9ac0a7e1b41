/* SPDX-License-Identifier: MIT */
/*
 * Version 3 steps (docs/FORMAT.md §12, §14): the arena, the count frame of the open step
 * (filled by sg_feed's events and sg_step's frames), and at the step's end the entries
 * in table order: delays, synaptic sum, neurons, logits and statistics.
 */
#include <string.h>

#include "../../core/sg_counts.h"
#include "sg_snn.h"

static size_t ceil4(size_t v)
{
    return (v + 3u) & ~(size_t)3u;
}

static size_t cells_of(const sg_model *m)
{
    return (size_t)m->in_c * m->in_h * m->in_w;
}

/* Regions in §14's order, each 4-aligned. */
size_t sg_snn_layout(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    const size_t cells = cells_of(m);
    sg_snn_state *st = &rt->state.snn;
    uint8_t *p = rt->arena;
    size_t n_max = 0;
    uint32_t e;
    st->counts = (uint16_t *)(void *)p;
    p += ceil4(2u * cells);
    st->x = p;
    p += ceil4(cells);
    for (e = 0; e < SG_MAX_STAGES; ++e) {
        st->act[e] = NULL;
        st->v[e] = NULL;
        st->ring[e] = NULL;
    }
    for (e = 0; e < m->n_stages; ++e) {
        const sg_slayer *ly = &m->net.snn.layers[e];
        const size_t n = ly->n_out;
        st->act[e] = p;
        p += ceil4(n);
        if (ly->neuron != SG_NEURON_NONE) {
            st->v[e] = (int32_t *)(void *)p;
            p += 4u * n * (ly->neuron == SG_NEURON_CUBALIF ? 2u : 1u);
        }
        if (ly->delays != NULL) {
            st->ring[e] = p;
            p += ceil4(((size_t)ly->max_delay + 1u) * ly->n_in);
        }
        if (n > n_max) {
            n_max = n;
        }
    }
    st->acc = (int32_t *)(void *)p;
    p += 4u * n_max;
    st->out = (int32_t *)(void *)p;
    p += 4u * (size_t)m->n_classes;
    return (size_t)(p - rt->arena);
}

void sg_snn_open_step(sg_runtime *rt)
{
    memset(rt->state.snn.counts, 0, 2u * cells_of(rt->model));
}

void sg_snn_add_counts(sg_runtime *rt, const uint16_t *counts)
{
    rt->stats.events_in += sg_counts_add(rt->state.snn.counts, counts, cells_of(rt->model));
}

/* sg_feed's runs of events: each adds 1 (saturating) to its cell of the open step
 * (channel = polarity with two count channels; row, column = y, x / downsample). */
size_t sg_snn_feed(sg_runtime *rt, const sg_event *events, size_t e, size_t n, int64_t t_lo,
                   size_t *accepted, size_t *dropped)
{
    const sg_model *m = rt->model;
    return sg_counts_feed(rt->state.snn.counts, m, m->in_h, m->in_w, m->in_c == 2u, events, e, n,
                          t_lo, accepted, dropped);
}

void sg_snn_close_step(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    sg_snn_state *st = &rt->state.snn;
    const size_t cells = cells_of(m);
    const uint8_t *x = st->x;
    uint64_t synops = 0;
    size_t i;
    uint32_t e;
    for (i = 0; i < cells; ++i) { /* step 1: counts saturate at 255 */
        const uint16_t c = st->counts[i];
        st->x[i] = (uint8_t)(c > SG_SNN_ACT_MAX ? SG_SNN_ACT_MAX : c);
    }
    for (e = 0; e < m->n_stages; ++e) {
        const sg_slayer *ly = &m->net.snn.layers[e];
        sg_snn_input in;
        in.x = x;
        in.ring = NULL;
        in.delays = NULL;
        in.slot = 0;
        in.slots = 1;
        in.n_in = ly->n_in;
        if (st->ring[e] != NULL) { /* step 3: this step's input into its slot */
            in.slots = (uint32_t)ly->max_delay + 1u;
            in.slot = rt->step % in.slots;
            memcpy(st->ring[e] + (size_t)in.slot * ly->n_in, x, ly->n_in);
            in.ring = st->ring[e];
            in.delays = ly->delays;
        }
        synops += sg_snn_accumulate(ly, &in, st->act[e], st->acc);
        rt->stats.spikes[e] += sg_snn_neurons(ly, st->acc, st->act[e], st->v[e], st->out);
        x = st->act[e];
    }
    rt->stats.synops += synops;
    memcpy(rt->logits, st->out, 4u * (size_t)m->n_classes);
}
