/* SPDX-License-Identifier: MIT */
/* The imported int8 network kind (version 2 .sgm) behind the engine interface
 * (src/core/sg_engine.h). */
#include "sg_qnet.h"

/* The input entry (FORMAT.md §7.2): kernel_h = slices S (0: tensor input), kernel_w =
 * window W, depth_multiplier = polarity channels P. */
static uint16_t qnet_count_channels(const sg_model *m)
{
    const sg_qlayer *in = &m->net.qnet.layers[0];
    return in->kernel_h >= 1u ? in->depth_multiplier : 0u;
}

static uint32_t qnet_window(const sg_model *m)
{
    const sg_qlayer *in = &m->net.qnet.layers[0];
    return in->kernel_h >= 1u ? in->kernel_w : 1u;
}

/* Layers are the entries after the input entry; every filter tap counts, as TFLite's
 * reference kernels loop over them. */
static uint16_t qnet_layers(const sg_model *m, uint16_t index, sg_layer_info *info)
{
    const uint16_t n = (uint16_t)(m->n_stages - 1u);
    if (index < n) {
        const sg_qlayer *q = &m->net.qnet.layers[index + 1u];
        const uint64_t taps = (uint64_t)q->kernel_h * q->kernel_w;
        info->kind = q->kind;
        info->flags = (uint16_t)(q->flags & SG_FLAG_OUTPUT);
        info->n_out = q->n_out;
        info->fan_in = q->kind == SG_QKIND_CONV        ? taps * q->filter_c
                       : q->kind == SG_QKIND_DEPTHWISE ? taps
                       : q->kind == SG_QKIND_FC        ? (uint64_t)q->in_c
                                                       : 0u; /* pool: no weights */
    }
    return n;
}

const sg_engine sg_engine_qnet = {
    .format_version = SG_FMT_VERSION_QNET,
    .check_header = sg_qnet_check_header,
    .load = sg_qnet_load,
    .count_channels = qnet_count_channels,
    .window = qnet_window,
    .layers = qnet_layers,
    .layout = sg_qnet_layout,
    .reset = sg_qnet_reset, /* the all-base input's response (FORMAT.md §8 "Reset") */
    .open_step = sg_qnet_open_step,
    .feed = sg_qnet_feed,
    .add_counts = sg_qnet_add_counts,
    .close_step = sg_qnet_close_step,
    .step_tensor = sg_qnet_step_tensor,
};
