/* SPDX-License-Identifier: MIT */
/* The layered spiking network kind (version 3 .sgm, NIR's) behind the engine interface
 * (src/core/sg_engine.h). */
#include "sg_snn.h"

/* Count frames of in_c (1 or 2) polarity channels. */
static uint16_t snn_count_channels(const sg_model *m)
{
    return m->in_c;
}

/* Scores sum every step (the "whole window" rule). */
static uint32_t snn_window(const sg_model *m)
{
    (void)m;
    return 1u;
}

/* Every entry is a layer; fan-in: the weights one output sums (dense n_in, conv
 * in_c / groups x kernel taps, padding included; pooling and identity 0), plus n_out
 * recurrent weights. */
static uint16_t snn_layers(const sg_model *m, uint16_t index, sg_layer_info *info)
{
    if (index < m->n_stages) {
        const sg_slayer *s = &m->net.snn.layers[index];
        info->kind = s->kind;
        info->flags = (uint16_t)(s->flags & SG_FLAG_OUTPUT);
        info->n_out = s->n_out;
        info->fan_in = (s->kind == SG_SKIND_DENSE ? (uint64_t)s->n_in
                        : s->kind == SG_SKIND_CONV2D
                            ? (uint64_t)(s->in_c / s->groups) * s->kernel_h * s->kernel_w
                            : 0u) +
                       (s->rec_weights != NULL ? (uint64_t)s->n_out : 0u);
    }
    return m->n_stages;
}

const sg_engine sg_engine_snn = {
    .format_version = SG_FMT_VERSION_SNN,
    .check_header = sg_snn_check_header,
    .load = sg_snn_load,
    .count_channels = snn_count_channels,
    .window = snn_window,
    .layers = snn_layers,
    .layout = sg_snn_layout,
    .reset = NULL, /* zero is the state of no input (FORMAT.md §12 "State") */
    .open_step = sg_snn_open_step,
    .feed = sg_snn_feed,
    .add_counts = sg_snn_add_counts,
    .close_step = sg_snn_close_step,
    .step_tensor = NULL,
};
