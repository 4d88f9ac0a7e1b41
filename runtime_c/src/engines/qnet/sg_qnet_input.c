/* SPDX-License-Identifier: MIT */
/*
 * Version 2 event-count input (docs/FORMAT.md §7.2): the open step's count per cell
 * (P x in_h x in_w), filled by sg_feed's events or sg_step's frames. At the step's end its
 * cells with a count join the event ring and the encoder turns the ring into the int8
 * input tensor's deltas (sg_qnet_step.c).
 */
#include "../../core/sg_counts.h"
#include "sg_qnet.h"

void sg_qnet_open_step(sg_runtime *rt)
{
    (void)rt; /* the open counts were cleared when the last step joined the ring */
}

void sg_qnet_add_counts(sg_runtime *rt, const uint16_t *counts)
{
    const sg_qlayer *in = &rt->model->net.qnet.layers[0];
    const size_t cells = (size_t)in->depth_multiplier * in->out_h * in->out_w;
    rt->stats.events_in += sg_counts_add(rt->state.qnet.open, counts, cells);
}

/* sg_feed's runs of events: each event adds 1 (saturating) to its cell in the open
 * step's counts; the step's end runs the encoder and the layers. */
size_t sg_qnet_feed(sg_runtime *rt, const sg_event *events, size_t e, size_t n, int64_t t_lo,
                    size_t *accepted, size_t *dropped)
{
    const sg_qlayer *in = &rt->model->net.qnet.layers[0];
    return sg_counts_feed(rt->state.qnet.open, rt->model, in->out_h, in->out_w,
                          in->depth_multiplier == 2u, events, e, n, t_lo, accepted, dropped);
}
