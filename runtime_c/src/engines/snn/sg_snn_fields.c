/* SPDX-License-Identifier: MIT */
/*
 * Version 3 loader, the fields of one layer-table entry up to `reserved` (kind, flags,
 * the chain, geometry, delays, neuron and its flags) in pysg/sgm/snn.py's order
 * (docs/FORMAT.md §15). Blobs, contents and the accumulator bound: sg_snn_load.c.
 */
#include "sg_snn.h"

/* (n + 2p - k) / s + 1, or 0 when the kernel does not fit (pysg's _out_size) */
static uint32_t out_size(uint32_t n, uint32_t k, uint32_t s, uint32_t p)
{
    return n + 2u * p >= k ? (n + 2u * p - k) / s + 1u : 0u;
}

/* Geometry (pysg's _check_geometry): 0 if valid, else the offset of the first bad field. */
SG_NOINLINE static uint32_t check_geometry(const sg_slayer *s)
{
    if (s->kind == SG_SKIND_DENSE || s->kind == SG_SKIND_IDENTITY) {
        static const uint32_t ones[4] = {SG_L3_KERNEL_H, SG_L3_KERNEL_W, SG_L3_STRIDE_H,
                                         SG_L3_STRIDE_W};
        const uint16_t v[4] = {s->kernel_h, s->kernel_w, s->stride_h, s->stride_w};
        uint32_t i;
        for (i = 0; i < 4u; ++i) {
            if (v[i] != 1u) {
                return ones[i];
            }
        }
        if (s->pad_h != 0u) {
            return SG_L3_PAD_H;
        }
        if (s->pad_w != 0u) {
            return SG_L3_PAD_W;
        }
        if (s->groups != 1u) {
            return SG_L3_GROUPS;
        }
        if (s->kind == SG_SKIND_DENSE && (s->out_h != 1u || s->out_w != 1u)) {
            return SG_L3_OUT_H;
        }
        if (s->kind == SG_SKIND_IDENTITY &&
            (s->out_c != s->in_c || s->out_h != s->in_h || s->out_w != s->in_w)) {
            return SG_L3_OUT_C;
        }
        return 0;
    }
    if (s->kernel_h == 0u) {
        return SG_L3_KERNEL_H;
    }
    if (s->kernel_w == 0u) {
        return SG_L3_KERNEL_W;
    }
    if (s->stride_h == 0u) {
        return SG_L3_STRIDE_H;
    }
    if (s->stride_w == 0u) {
        return SG_L3_STRIDE_W;
    }
    if (s->pad_h >= s->kernel_h) {
        return SG_L3_PAD_H;
    }
    if (s->pad_w >= s->kernel_w) {
        return SG_L3_PAD_W;
    }
    if (s->kind == SG_SKIND_SUMPOOL) {
        if (s->groups != 1u) {
            return SG_L3_GROUPS;
        }
        if (s->out_c != s->in_c) {
            return SG_L3_OUT_C;
        }
    } else if (s->groups == 0u || s->in_c % s->groups != 0u || s->out_c % s->groups != 0u) {
        return SG_L3_GROUPS;
    }
    {
        const uint32_t oh = out_size(s->in_h, s->kernel_h, s->stride_h, s->pad_h);
        const uint32_t ow = out_size(s->in_w, s->kernel_w, s->stride_w, s->pad_w);
        if (oh == 0u || s->out_h != oh) {
            return SG_L3_OUT_H;
        }
        if (ow == 0u || s->out_w != ow) {
            return SG_L3_OUT_W;
        }
    }
    return 0;
}

/* Fields up to `reserved` (FORMAT.md §15, pysg's order); 0 if valid, else the offset. */
uint32_t sg_snn_check_fields(const sg_slayer *s, const uint16_t prev[3], int is_last)
{
    const uint32_t flags = s->flags;
    const uint32_t nk = s->neuron;
    const uint32_t known = SG_FLAG_OUTPUT | SG_SFLAG_RECURRENT | SG_SFLAG_DELAYS |
                           SG_SFLAG_FIRE_GE | SG_SFLAG_LOGITS_V;
    const int is_output = (flags & SG_FLAG_OUTPUT) != 0u;
    uint32_t at;
    if (s->kind < SG_SKIND_DENSE || s->kind > SG_SKIND_IDENTITY) {
        return SG_L3_KIND + 1u; /* +1: offset 0 is "valid" */
    }
    if ((flags & ~known) != 0u || is_output != is_last) {
        return SG_L3_FLAGS + 1u;
    }
    if (s->in_c != prev[0]) {
        return SG_L3_IN_C + 1u;
    }
    if (s->in_h != prev[1]) {
        return SG_L3_IN_H + 1u;
    }
    if (s->in_w != prev[2]) {
        return SG_L3_IN_W + 1u;
    }
    if (s->out_c == 0u) {
        return SG_L3_OUT_C + 1u;
    }
    if (s->out_h == 0u) {
        return SG_L3_OUT_H + 1u;
    }
    if (s->out_w == 0u) {
        return SG_L3_OUT_W + 1u;
    }
    at = check_geometry(s);
    if (at != 0u) {
        return at + 1u;
    }
    if ((flags & SG_SFLAG_DELAYS) != 0u ? (s->max_delay < 1u || s->max_delay > SG_SNN_DELAY_MAX)
                                        : s->max_delay != 0u) {
        return SG_L3_MAX_DELAY + 1u;
    }
    if (nk > SG_NEURON_THRESHOLD) {
        return SG_L3_NEURON + 1u;
    }
    if (s->reset > SG_RESET_SUBTRACT_NEXT ||
        ((!sg_snn_spiking(nk) || nk == SG_NEURON_THRESHOLD) && s->reset != SG_RESET_NONE)) {
        return SG_L3_RESET + 1u;
    }
    if (!is_output && !sg_snn_spiking(nk) &&
        !(nk == SG_NEURON_NONE && (s->kind == SG_SKIND_SUMPOOL || s->kind == SG_SKIND_IDENTITY))) {
        return SG_L3_NEURON + 1u;
    }
    if (((flags & SG_SFLAG_FIRE_GE) != 0u && !sg_snn_spiking(nk)) ||
        ((flags & SG_SFLAG_LOGITS_V) != 0u && (!is_output || nk == SG_NEURON_NONE)) ||
        ((flags & SG_SFLAG_RECURRENT) != 0u && !sg_snn_spiking(nk))) {
        return SG_L3_FLAGS + 1u;
    }
    return 0;
}
