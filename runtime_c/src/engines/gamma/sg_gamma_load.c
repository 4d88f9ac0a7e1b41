/* SPDX-License-Identifier: MIT */
/*
 * Version 1 (SpikingGamma) loader: the header fields whose rules are this kind's, then
 * each layer entry in field order, its blobs and their contents (docs/FORMAT.md §5 steps
 * 4 and 6), and the arena formula (§4). Offsets, kinds, flags and limits: sg_format.h.
 */
#include "sg_gamma.h"

SG_STATIC_ASSERT(gamma_blobs_fit, SG_L1_N_BLOBS <= SG_LOAD_MAX_BLOBS);

static const char *const blob_off_names[SG_L1_N_BLOBS] = {
    "layers[].weights_offset", "layers[].bias_offset",  "layers[].vweights_offset",
    "layers[].vshift_offset",  "layers[].theta_offset", "layers[].alpha_offset",
    "layers[].delays_offset"};
static const char *const blob_size_names[SG_L1_N_BLOBS] = {
    "layers[].weights_size", "layers[].bias_size",  "layers[].vweights_size",
    "layers[].vshift_size",  "layers[].theta_size", "layers[].alpha_size",
    "layers[].delays_size"};

sg_status sg_gamma_check_header(sg_loader *L)
{
    const sg_model *m = L->m;
    const uint16_t k = sg_rd16(L->d + SG_HDR_N_BUCKETS);
    if (m->n_stages < 1u || m->n_stages > SG_FMT_MAX_STAGES) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_N_STAGES, "n_stages");
    }
    if (k < 1u || k > SG_FMT_MAX_BUCKETS) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_N_BUCKETS, "n_buckets");
    }
    if (m->in_c != 1u && m->in_c != 2u) { /* one channel, or one per polarity */
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_IN_C, "in_c");
    }
    L->m->net.gamma.n_buckets = k;
    return SG_OK;
}

/* Bytes blob @p b of a stage must have. */
static uint64_t expected_blob(uint32_t b, const sg_stage *st, uint32_t k, int is_output,
                              int has_delays)
{
    const uint64_t c_out = st->out_c;
    const uint64_t n_in = (uint64_t)st->syn_c * st->syn_h * st->syn_w;
    switch (b) {
    case SG_L1_BLOB_WEIGHTS: /* int8 */
        return c_out *
               (st->kind == SG_KIND_DENSE ? n_in : (uint64_t)st->syn_c * st->kernel * st->kernel);
    case SG_L1_BLOB_BIAS: /* int32 */
        return 4u * c_out;
    case SG_L1_BLOB_VWEIGHTS: /* int16 [out_c][K] */
        return 2u * c_out * k;
    case SG_L1_BLOB_VSHIFT: /* uint8 */
        return c_out;
    case SG_L1_BLOB_THETA: /* int32, hidden stages only */
        return is_output ? 0u : 4u * c_out;
    case SG_L1_BLOB_ALPHA: /* uint16 [K] */
        return 2u * (uint64_t)k;
    default: /* SG_L1_BLOB_DELAYS: uint8 [n_in] */
        return has_delays ? n_in : 0u;
    }
}

static sg_status bad(sg_loader *L, uint64_t base, uint32_t field, const char *name)
{
    return sg_load_fail(L, SG_ERR_LAYER, base + field, name);
}

static sg_status check_geometry(sg_loader *L, uint64_t base, const sg_stage *st,
                                const uint16_t prev[3])
{
    if (st->in_c != prev[0]) {
        return bad(L, base, SG_L1_IN_C, "layers[].in_c");
    }
    if (st->in_h != prev[1]) {
        return bad(L, base, SG_L1_IN_H, "layers[].in_h");
    }
    if (st->in_w != prev[2]) {
        return bad(L, base, SG_L1_IN_W, "layers[].in_w");
    }
    if (st->pool == 0u) {
        return bad(L, base, SG_L1_POOL, "layers[].pool");
    }
    if (st->syn_c != st->in_c) {
        return bad(L, base, SG_L1_SYN_C, "layers[].syn_c");
    }
    if (st->syn_h != st->in_h / st->pool || st->syn_h == 0u) {
        return bad(L, base, SG_L1_SYN_H, "layers[].syn_h");
    }
    if (st->syn_w != st->in_w / st->pool || st->syn_w == 0u) {
        return bad(L, base, SG_L1_SYN_W, "layers[].syn_w");
    }
    if (st->out_c == 0u) {
        return bad(L, base, SG_L1_OUT_C, "layers[].out_c");
    }
    if (st->kind == SG_KIND_DENSE) {
        if (st->out_h != 1u) {
            return bad(L, base, SG_L1_OUT_H, "layers[].out_h");
        }
        if (st->out_w != 1u) {
            return bad(L, base, SG_L1_OUT_W, "layers[].out_w");
        }
        if (st->kernel != 1u) {
            return bad(L, base, SG_L1_KERNEL, "layers[].kernel");
        }
        if (st->stride != 1u) {
            return bad(L, base, SG_L1_STRIDE, "layers[].stride");
        }
        if (st->padding != 0u) {
            return bad(L, base, SG_L1_PADDING, "layers[].padding");
        }
    } else {
        int64_t span;
        int64_t want;
        if (st->kernel == 0u) {
            return bad(L, base, SG_L1_KERNEL, "layers[].kernel");
        }
        if (st->stride == 0u) {
            return bad(L, base, SG_L1_STRIDE, "layers[].stride");
        }
        if (st->padding >= st->kernel) {
            return bad(L, base, SG_L1_PADDING, "layers[].padding");
        }
        span = (int64_t)st->syn_h + 2 * (int64_t)st->padding - (int64_t)st->kernel;
        want = span >= 0 ? span / st->stride + 1 : 0;
        if ((int64_t)st->out_h != want || want == 0) {
            return bad(L, base, SG_L1_OUT_H, "layers[].out_h");
        }
        span = (int64_t)st->syn_w + 2 * (int64_t)st->padding - (int64_t)st->kernel;
        want = span >= 0 ? span / st->stride + 1 : 0;
        if ((int64_t)st->out_w != want || want == 0) {
            return bad(L, base, SG_L1_OUT_W, "layers[].out_w");
        }
    }
    return SG_OK;
}

static sg_status check_contents(sg_loader *L, const uint32_t off[SG_L1_N_BLOBS], const sg_stage *st,
                                uint32_t k, int is_output, int has_delays)
{
    const uint8_t *d = L->d;
    const uint32_t vshift = off[SG_L1_BLOB_VSHIFT];
    const uint32_t alpha = off[SG_L1_BLOB_ALPHA];
    const uint32_t theta = off[SG_L1_BLOB_THETA];
    const uint32_t delays = off[SG_L1_BLOB_DELAYS];
    uint32_t i;
    for (i = 0; i < st->out_c; ++i) {
        if (d[vshift + i] > SG_FMT_VSHIFT_MAX) {
            return sg_load_fail(L, SG_ERR_VALUE, (uint64_t)vshift + i, "layers[].vshift[]");
        }
    }
    for (i = 0; i < k; ++i) {
        if (sg_rd16(d + alpha + 2u * i) >= SG_FMT_Q15_ONE) {
            return sg_load_fail(L, SG_ERR_VALUE, (uint64_t)alpha + 2u * i, "layers[].alpha[]");
        }
    }
    if (!is_output) {
        for (i = 0; i < st->out_c; ++i) {
            const int32_t th = (int32_t)sg_rd32(d + theta + 4u * i);
            if (th < 1 || th > SG_FMT_THETA_MAX) {
                return sg_load_fail(L, SG_ERR_VALUE, (uint64_t)theta + 4u * i, "layers[].theta[]");
            }
        }
    }
    if (has_delays) {
        for (i = 0; i < st->n_in; ++i) {
            if (d[delays + i] > st->max_delay) {
                return sg_load_fail(L, SG_ERR_VALUE, (uint64_t)delays + i, "layers[].delays[]");
            }
        }
    }
    return SG_OK;
}

/* The blob table of entry @p e at @p base: sizes, absent blobs, alignment, bounds, overlap. */
static sg_status check_blobs(sg_loader *L, uint64_t base, const uint8_t *e, const sg_stage *st,
                             uint32_t k, int is_output, int has_delays, uint32_t off[SG_L1_N_BLOBS])
{
    uint32_t b;
    for (b = 0; b < SG_L1_N_BLOBS; ++b) {
        const uint32_t at = SG_L1_BLOB_TABLE + 8u * b; /* (offset, size) pairs */
        const uint64_t o = sg_rd32(e + at);
        const uint64_t size = sg_rd32(e + at + 4u);
        const uint64_t want = expected_blob(b, st, k, is_output, has_delays);
        off[b] = (uint32_t)o;
        if (size != want) {
            return sg_load_fail(L, SG_ERR_BLOB, base + at + 4u, blob_size_names[b]);
        }
        if (want == 0u) {
            if (o != 0u) {
                return sg_load_fail(L, SG_ERR_BLOB, base + at, blob_off_names[b]);
            }
            continue;
        }
        if (o % SG_FMT_ALIGN != 0u) {
            return sg_load_fail(L, SG_ERR_BLOB, base + at, blob_off_names[b]);
        }
        if (o < SG_FMT_HEADER_SIZE || o + size > L->n) {
            return sg_load_fail(L, SG_ERR_BLOB, base + at, blob_off_names[b]);
        }
        if (!sg_load_claim(L, o, o + size)) {
            return sg_load_fail(L, SG_ERR_BLOB, base + at, blob_off_names[b]);
        }
    }
    return SG_OK;
}

static sg_status check_layer(sg_loader *L, uint32_t si, const uint16_t prev[3], uint64_t *arena)
{
    sg_model *m = L->m;
    const uint64_t base =
        (uint64_t)sg_rd32(L->d + SG_HDR_LAYERS_OFFSET) + (uint64_t)si * SG_FMT_LAYER_ENTRY_SIZE;
    const uint8_t *e = L->d + base;
    sg_stage *st = &m->net.gamma.stages[si];
    const uint32_t k = m->net.gamma.n_buckets;
    int is_output;
    int has_delays;
    int32_t fbits;
    uint32_t off[SG_L1_N_BLOBS];
    sg_status rc;

    st->kind = sg_rd16(e + SG_L1_KIND);
    st->flags = sg_rd16(e + SG_L1_FLAGS);
    st->in_c = sg_rd16(e + SG_L1_IN_C);
    st->in_h = sg_rd16(e + SG_L1_IN_H);
    st->in_w = sg_rd16(e + SG_L1_IN_W);
    st->pool = sg_rd16(e + SG_L1_POOL);
    st->syn_c = sg_rd16(e + SG_L1_SYN_C);
    st->syn_h = sg_rd16(e + SG_L1_SYN_H);
    st->syn_w = sg_rd16(e + SG_L1_SYN_W);
    st->out_c = sg_rd16(e + SG_L1_OUT_C);
    st->out_h = sg_rd16(e + SG_L1_OUT_H);
    st->out_w = sg_rd16(e + SG_L1_OUT_W);
    st->kernel = sg_rd16(e + SG_L1_KERNEL);
    st->stride = sg_rd16(e + SG_L1_STRIDE);
    st->padding = sg_rd16(e + SG_L1_PADDING);
    st->max_delay = sg_rd16(e + SG_L1_MAX_DELAY);
    fbits = (int32_t)sg_rd32(e + SG_L1_X_FRAC_BITS);

    if (st->kind != SG_KIND_DENSE && st->kind != SG_KIND_CONV2D) {
        return bad(L, base, SG_L1_KIND, "layers[].kind");
    }
    if ((st->flags & ~(SG_FLAG_OUTPUT | SG_FLAG_DELAYS | SG_FLAG_SPIKE_RING)) != 0u) {
        return bad(L, base, SG_L1_FLAGS, "layers[].flags");
    }
    is_output = (st->flags & SG_FLAG_OUTPUT) != 0u;
    if (is_output != (si == (uint32_t)m->n_stages - 1u)) {
        return bad(L, base, SG_L1_FLAGS, "layers[].flags");
    }
    has_delays = (st->flags & SG_FLAG_DELAYS) != 0u;
    rc = check_geometry(L, base, st, prev);
    if (rc != SG_OK) {
        return rc;
    }
    /* a bit per input and slot holds every event only behind hidden neurons, unpooled */
    if ((st->flags & SG_FLAG_SPIKE_RING) != 0u && (!has_delays || si == 0u || st->pool != 1u)) {
        return bad(L, base, SG_L1_FLAGS, "layers[].flags");
    }
    if (!has_delays && st->max_delay != 0u) {
        return bad(L, base, SG_L1_MAX_DELAY, "layers[].max_delay");
    }
    if (has_delays && st->max_delay > UINT8_MAX) { /* delays are uint8 */
        return bad(L, base, SG_L1_MAX_DELAY, "layers[].max_delay");
    }
    if (fbits < SG_FMT_X_FRAC_BITS_MIN || fbits > SG_FMT_X_FRAC_BITS_MAX) {
        return bad(L, base, SG_L1_X_FRAC_BITS, "layers[].x_frac_bits");
    }
    {
        const uint32_t min_count = sg_rd32(e + SG_L1_MIN_COUNT);
        if ((si != 0u && min_count != 0u) || min_count > SG_FMT_MIN_COUNT_MAX) {
            return bad(L, base, SG_L1_MIN_COUNT, "layers[].min_count");
        }
        st->min_count = (uint16_t)min_count;
    }
    rc = check_blobs(L, base, e, st, k, is_output, has_delays, off);
    if (rc != SG_OK) {
        return rc;
    }
    {
        const uint64_t n_in = (uint64_t)st->syn_c * st->syn_h * st->syn_w;
        const uint64_t n_out = (uint64_t)st->out_c * st->out_h * st->out_w;
        const uint64_t n_raw = (uint64_t)st->in_c * st->in_h * st->in_w;
        if (n_in > UINT32_MAX || n_out > UINT32_MAX || n_raw > UINT32_MAX) {
            L->too_big = 1; /* refused after the format checks (SG_ERR_UNSUPPORTED) */
        }
        st->n_in = (uint32_t)n_in;
        st->n_out = (uint32_t)n_out;
    }
    rc = check_contents(L, off, st, k, is_output, has_delays);
    if (rc != SG_OK) {
        return rc;
    }
    /* FORMAT.md §4: K buckets per neuron, an encoder state per hidden neuron, the ring, the
     * input gate's counts */
    *arena += 4u * ((uint64_t)k * ((uint64_t)st->out_c * st->out_h * st->out_w) +
                    (is_output ? 0u : (uint64_t)st->out_c * st->out_h * st->out_w) +
                    (has_delays ? ((uint64_t)st->max_delay + 1u) * sg_gamma_ring_words(st) : 0u) +
                    (sg_gate_of(st) > 1u ? sg_gamma_count_words(st) : 0u));
    /* typed views only when the file is 8-aligned (blobs then are naturally aligned);
     * sg_runtime_init refuses a model without them */
    if (((uintptr_t)L->d & (SG_FMT_ALIGN - 1u)) == 0u) {
        const uint8_t *d = L->d;
        st->weights = (const int8_t *)(const void *)(d + off[SG_L1_BLOB_WEIGHTS]);
        st->bias = (const int32_t *)(const void *)(d + off[SG_L1_BLOB_BIAS]);
        st->vweights = (const int16_t *)(const void *)(d + off[SG_L1_BLOB_VWEIGHTS]);
        st->vshift = d + off[SG_L1_BLOB_VSHIFT];
        st->theta = is_output ? NULL : (const int32_t *)(const void *)(d + off[SG_L1_BLOB_THETA]);
        st->alpha = (const uint16_t *)(const void *)(d + off[SG_L1_BLOB_ALPHA]);
        st->delays = has_delays ? d + off[SG_L1_BLOB_DELAYS] : NULL;
    } else {
        st->weights = NULL;
        st->bias = NULL;
        st->vweights = NULL;
        st->vshift = NULL;
        st->theta = NULL;
        st->alpha = NULL;
        st->delays = NULL;
    }
#if !defined(SG_NO_PATCH)
    if (st->kind == SG_KIND_CONV2D && st->stride == st->kernel && st->padding == 0u) {
        st->flags |= SG_FLAG_PATCH; /* chosen once here: the kernels only test the bit */
    }
#endif
    return SG_OK;
}

sg_status sg_gamma_load(sg_loader *L, uint64_t *arena_bytes, uint64_t *n_out)
{
    const sg_model *m = L->m;
    uint16_t prev[3]; /* the previous stage's output geometry: this one's input */
    uint32_t si;
    prev[0] = m->in_c;
    prev[1] = m->in_h;
    prev[2] = m->in_w;
    *arena_bytes = 0;
    for (si = 0; si < m->n_stages; ++si) {
        const sg_stage *st = &m->net.gamma.stages[si];
        const sg_status rc = check_layer(L, si, prev, arena_bytes);
        if (rc != SG_OK) {
            return rc;
        }
        prev[0] = st->out_c;
        prev[1] = st->out_h;
        prev[2] = st->out_w;
    }
    *n_out = m->net.gamma.stages[m->n_stages - 1u].n_out;
    return SG_OK;
}
