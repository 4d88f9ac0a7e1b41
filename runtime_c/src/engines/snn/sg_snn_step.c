/* SPDX-License-Identifier: MIT */
/*
 * Version 3 steps (docs/FORMAT.md §12, §14): the arena, the count frame of the open step
 * (filled by sg_feed's events and sg_step's frames), and at the step's end the entries
 * in table order: delays, synaptic sum, neurons, logits and statistics.
 */
#include <string.h>

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
    const size_t cells = cells_of(rt->model);
    uint16_t *row = rt->state.snn.counts;
    uint64_t total = 0;
    size_t c;
    for (c = 0; c < cells; ++c) {
        const uint32_t v = (uint32_t)row[c] + counts[c];
        total += counts[c];
        row[c] = (uint16_t)(v > SG_FMT_COUNT_MAX ? SG_FMT_COUNT_MAX : v);
    }
    rt->stats.events_in += total;
}

/* sg_feed's runs of events: each adds 1 (saturating) to its cell of the open step
 * (channel = polarity with two count channels; row, column = y, x / downsample). */
size_t sg_snn_feed(sg_runtime *rt, const sg_event *events, size_t e, size_t n, int64_t t_lo,
                   size_t *accepted, size_t *dropped)
{
    const sg_model *m = rt->model;
    const uint64_t dt = m->dt_us;
    const uint32_t ds = m->downsample;
    const int two_ch = m->in_c == 2u;
    uint16_t *row = rt->state.snn.counts;
    size_t taken = 0;
    size_t out = 0;
    for (; e < n; ++e) {
        const sg_event *ev = &events[e];
        uint32_t cell;
        if (ev->t_us < t_lo || (uint64_t)ev->t_us - (uint64_t)t_lo >= dt) {
            break; /* not in the open step */
        }
        if (ev->x >= m->sensor_w || ev->y >= m->sensor_h || ev->p > 1u) {
            ++out;
            continue;
        }
        cell = ((two_ch ? (uint32_t)ev->p : 0u) * m->in_h + (uint32_t)ev->y / ds) * m->in_w +
               (uint32_t)ev->x / ds;
        if (row[cell] != SG_FMT_COUNT_MAX) {
            row[cell]++;
        }
        ++taken;
    }
    *accepted += taken;
    *dropped += out;
    return e;
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
