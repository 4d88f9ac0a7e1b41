/* SPDX-License-Identifier: MIT */
/* The SpikingGamma kind (version 1 .sgm) behind the engine interface (src/core/sg_engine.h). */
#include "sg_gamma.h"

static uint16_t gamma_count_channels(const sg_model *m)
{
    return m->in_c;
}

static uint32_t gamma_window(const sg_model *m)
{
    (void)m; /* events enter the buckets as they come: no input window */
    return 1u;
}

static uint16_t gamma_layers(const sg_model *m, uint16_t index, sg_layer_info *info)
{
    if (index < m->n_stages) {
        const sg_stage *st = &m->net.gamma.stages[index];
        info->kind = st->kind;
        info->flags = (uint16_t)(st->flags & SG_FLAG_OUTPUT);
        info->n_out = st->n_out;
        info->fan_in = st->kind == SG_KIND_DENSE ? (uint64_t)st->n_in
                                                 : (uint64_t)st->syn_c * st->kernel * st->kernel;
    }
    return m->n_stages;
}

const sg_engine sg_engine_gamma = {
    .format_version = SG_FMT_VERSION_SG,
    .check_header = sg_gamma_check_header,
    .load = sg_gamma_load,
    .count_channels = gamma_count_channels,
    .window = gamma_window,
    .layers = gamma_layers,
    .layout = sg_gamma_layout,
    .reset = sg_gamma_reset, /* all-zero buckets, encoders, rings and counts are the idle state */
    .open_step = sg_gamma_open_step,
    .feed = sg_gamma_feed,
    .add_counts = sg_gamma_add_counts,
    .close_step = sg_gamma_close_step,
    .step_tensor = NULL, /* events and frames of counts only */
};
