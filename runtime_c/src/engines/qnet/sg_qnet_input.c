/* SPDX-License-Identifier: MIT */
/*
 * Version 2 event-count input (docs/FORMAT.md §7.2): the open step's count per cell
 * (P x in_h x in_w), filled by sg_feed's events or sg_step's frames. At the step's end its
 * cells with a count join the event ring and the encoder turns the ring into the int8
 * input tensor's deltas (sg_qnet_step.c).
 */
#include <string.h>

#include "sg_qnet.h"

void sg_qnet_open_step(sg_runtime *rt)
{
    (void)rt; /* the open counts were cleared when the last step joined the ring */
}

void sg_qnet_add_counts(sg_runtime *rt, const uint16_t *counts)
{
    const sg_qlayer *in = &rt->model->net.qnet.layers[0];
    const size_t cells = (size_t)in->depth_multiplier * in->out_h * in->out_w;
    uint16_t *row = rt->state.qnet.open;
    uint64_t total = 0;
    size_t c;
    for (c = 0; c < cells; ++c) {
        const uint32_t v = (uint32_t)row[c] + counts[c];
        total += counts[c];
        row[c] = (uint16_t)(v > SG_FMT_COUNT_MAX ? SG_FMT_COUNT_MAX : v);
    }
    rt->stats.events_in += total;
}

/* sg_feed's runs of events: each event adds 1 (saturating) to its cell in the open
 * step's counts; the step's end runs the encoder and the layers. */
size_t sg_qnet_feed(sg_runtime *rt, const sg_event *events, size_t e, size_t n, int64_t t_lo,
                    size_t *accepted, size_t *dropped)
{
    const sg_model *m = rt->model;
    const sg_qlayer *in = &m->net.qnet.layers[0];
    const uint64_t dt = m->dt_us;
    const uint32_t ds = m->downsample;
    const int two_ch = in->depth_multiplier == 2u;
    size_t taken = 0; /* counted here, not through the pointers: they stay in registers */
    size_t out = 0;
    uint16_t *row = rt->state.qnet.open;
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
        cell = ((two_ch ? (uint32_t)ev->p : 0u) * in->out_h + (uint32_t)ev->y / ds) * in->out_w +
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
