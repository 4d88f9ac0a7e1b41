/* SPDX-License-Identifier: MIT */
/*
 * Version 3 (layered spiking network) loader: the header fields whose rules are this
 * kind's, then each table entry in pysg/sgm/snn.py's order (kind, flags, the chain,
 * geometry, delays, neuron and its flags, reserved), its blobs (size, then placement),
 * their contents and the accumulator bound (docs/FORMAT.md §15); the arena formula (§14).
 * Offsets, kinds, flags and limits: sg_format.h. The checks stay out of line (SG_NOINLINE):
 * the loader runs once per model, its code size is what counts.
 */
#include "sg_snn.h"

/* |accumulator| must stay below 2^31 (FORMAT.md §12). */
#define SACC_LIMIT (1ull << 31)
#define SNN_RECORD_BYTES (4u * SG_SNN_N_NEURON_PARAMS)
#define DECAY_ONE (1l << SG_SNN_DECAY_SHIFT)

sg_status sg_snn_check_header(sg_loader *L)
{
    const sg_model *m = L->m;
    if (m->n_stages < 1u || m->n_stages > SG_FMT_MAX_STAGES) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_N_STAGES, "n_stages");
    }
    if (sg_rd16(L->d + SG_HDR_N_BUCKETS) != 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_N_BUCKETS, "n_buckets");
    }
    if (m->in_c != 1u && m->in_c != 2u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_IN_C, "in_c");
    }
    return SG_OK;
}

static const char *const sblob_off_names[SG_L3_N_BLOBS] = {
    "layers[].weights_offset", "layers[].bias_offset",        "layers[].mult_offset",
    "layers[].shift_offset",   "layers[].rec_weights_offset", "layers[].delays_offset",
    "layers[].neuron_offset"};
static const char *const sblob_size_names[SG_L3_N_BLOBS] = {
    "layers[].weights_size", "layers[].bias_size",        "layers[].mult_size",
    "layers[].shift_size",   "layers[].rec_weights_size", "layers[].delays_size",
    "layers[].neuron_size"};
static const char *const sblob_elem_names[SG_L3_N_BLOBS] = {
    "layers[].weights[]",     "layers[].bias[]",   "layers[].mult[]",  "layers[].shift[]",
    "layers[].rec_weights[]", "layers[].delays[]", "layers[].neuron[]"};

/* The entry's u16 fields, by offset / 2. */
static sg_status sfail(sg_loader *L, uint64_t base, uint32_t at)
{
    static const char *const names[SG_L3_RESERVED / 2u + 1u] = {
        [SG_L3_KIND / 2u] = "layers[].kind",         [SG_L3_FLAGS / 2u] = "layers[].flags",
        [SG_L3_IN_C / 2u] = "layers[].in_c",         [SG_L3_IN_H / 2u] = "layers[].in_h",
        [SG_L3_IN_W / 2u] = "layers[].in_w",         [SG_L3_OUT_C / 2u] = "layers[].out_c",
        [SG_L3_OUT_H / 2u] = "layers[].out_h",       [SG_L3_OUT_W / 2u] = "layers[].out_w",
        [SG_L3_KERNEL_H / 2u] = "layers[].kernel_h", [SG_L3_KERNEL_W / 2u] = "layers[].kernel_w",
        [SG_L3_STRIDE_H / 2u] = "layers[].stride_h", [SG_L3_STRIDE_W / 2u] = "layers[].stride_w",
        [SG_L3_PAD_H / 2u] = "layers[].pad_h",       [SG_L3_PAD_W / 2u] = "layers[].pad_w",
        [SG_L3_GROUPS / 2u] = "layers[].groups",     [SG_L3_MAX_DELAY / 2u] = "layers[].max_delay",
        [SG_L3_NEURON / 2u] = "layers[].neuron",     [SG_L3_RESET / 2u] = "layers[].reset",
        [SG_L3_RESERVED / 2u] = "layers[].reserved",
    };
    return sg_load_fail(L, SG_ERR_LAYER, base + at, names[at / 2u]);
}

/* a b, saturating (sizes that no u32 field can equal stay unequal) */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return a != 0u && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

/* Whether @p size is a valid size of blob @p b (pysg's `sizes`); @p n_rq: mult's elements. */
SG_NOINLINE static int blob_size_ok(uint32_t b, uint64_t size, const sg_slayer *s, uint64_t n_rq)
{
    const uint64_t oc = s->out_c;
    const uint64_t n_in = (uint64_t)s->in_c * s->in_h * s->in_w;
    const uint64_t n_out = oc * s->out_h * s->out_w;
    const uint64_t w = s->kind == SG_SKIND_DENSE ? mul_sat(n_out, n_in)
                       : s->kind == SG_SKIND_CONV2D
                           ? oc * (s->in_c / s->groups) * s->kernel_h * (uint64_t)s->kernel_w
                           : 0u;
    switch (b) {
    case SG_L3_BLOB_WEIGHTS:
        return size == w;
    case SG_L3_BLOB_BIAS:
        return size == 0u || (w != 0u && size == 4u * oc);
    case SG_L3_BLOB_MULT:
        return size == 4u || size == 4u * oc;
    case SG_L3_BLOB_SHIFT:
        return size == n_rq;
    case SG_L3_BLOB_REC_WEIGHTS:
        return size == ((s->flags & SG_SFLAG_RECURRENT) != 0u ? mul_sat(n_out, n_out) : 0u);
    case SG_L3_BLOB_DELAYS:
        return size == ((s->flags & SG_SFLAG_DELAYS) != 0u ? n_in : 0u);
    default:
        return s->neuron == SG_NEURON_NONE
                   ? size == 0u
                   : (size == SNN_RECORD_BYTES || size == mul_sat(SNN_RECORD_BYTES, n_out));
    }
}

/* The neuron records (pysg's _check_neuron_values): SG_OK or the first bad element. */
SG_NOINLINE static sg_status check_records(sg_loader *L, const sg_slayer *s, uint32_t off,
                                           uint32_t n_rec)
{
    const uint32_t nk = s->neuron;
    const int cuba = nk == SG_NEURON_CUBALIF;
    const int64_t fixed = nk == SG_NEURON_IF || nk == SG_NEURON_INTEGRATOR ? DECAY_ONE
                          : nk == SG_NEURON_THRESHOLD                      ? 0
                                                                           : -1;
    uint32_t r;
    for (r = 0; r < n_rec; ++r) {
        const uint8_t *p = L->d + off + (size_t)r * SNN_RECORD_BYTES;
        const int64_t bm = (int32_t)sg_rd32(p + 4u * SG_NP_BETA_MEM);
        const int64_t bs = (int32_t)sg_rd32(p + 4u * SG_NP_BETA_SYN);
        const int64_t g = (int32_t)sg_rd32(p + 4u * SG_NP_SYN_GAIN);
        const int64_t thr = (int32_t)sg_rd32(p + 4u * SG_NP_THRESHOLD);
        const int64_t vr = (int32_t)sg_rd32(p + 4u * SG_NP_V_RESET);
        uint32_t bad = SG_SNN_N_NEURON_PARAMS;
        if ((fixed >= 0 && bm != fixed) || bm < 0 || bm > DECAY_ONE) {
            bad = SG_NP_BETA_MEM;
        } else if (cuba ? (bs < 0 || bs > DECAY_ONE) : bs != 0) {
            bad = SG_NP_BETA_SYN;
        } else if (!cuba && g != 0) {
            bad = SG_NP_SYN_GAIN;
        } else if ((!sg_snn_spiking(nk) && thr != 0) ||
                   ((s->reset == SG_RESET_SUBTRACT || s->reset == SG_RESET_SUBTRACT_NEXT) &&
                    thr < 1)) {
            bad = SG_NP_THRESHOLD;
        } else if (s->reset != SG_RESET_TO_VALUE && vr != 0) {
            bad = SG_NP_V_RESET;
        }
        if (bad != SG_SNN_N_NEURON_PARAMS) {
            return sg_load_fail(L, SG_ERR_VALUE,
                                (uint64_t)off + (uint64_t)r * SNN_RECORD_BYTES + 4u * bad,
                                sblob_elem_names[SG_L3_BLOB_NEURON]);
        }
    }
    return SG_OK;
}

/* sum |w| of @p n int8 weights */
static uint64_t abs_sum(const uint8_t *p, uint64_t n)
{
    uint64_t sum = 0;
    uint64_t i;
    for (i = 0; i < n; ++i) {
        const int32_t x = (int8_t)p[i];
        sum += (uint64_t)(x < 0 ? -x : x);
    }
    return sum;
}

/* FORMAT.md §12 "Accumulator bound" as pysg's snn_accumulator_bound: |bias| + 255 sum|w|
 * + 255 sum|r| of every output below 2^31 (sum pool: 255 kh kw in place of 255 sum|w|;
 * identity: 255). */
SG_NOINLINE static int acc_bound_ok(const uint8_t *d, const uint32_t off[SG_L3_N_BLOBS],
                                    const uint32_t size[SG_L3_N_BLOBS], const sg_slayer *s)
{
    const uint64_t hw = (uint64_t)s->out_h * s->out_w; /* dense: 1 */
    const uint64_t n_out = (uint64_t)s->out_c * hw;
    const uint64_t row = s->kind == SG_SKIND_DENSE ? (uint64_t)s->in_c * s->in_h * s->in_w
                         : s->kind == SG_SKIND_CONV2D
                             ? (uint64_t)(s->in_c / s->groups) * s->kernel_h * s->kernel_w
                             : 0u;
    uint64_t c;
    for (c = 0; c < s->out_c; ++c) {
        uint64_t per = s->kind == SG_SKIND_IDENTITY ? SG_SNN_ACT_MAX
                       : s->kind == SG_SKIND_SUMPOOL
                           ? (uint64_t)SG_SNN_ACT_MAX * s->kernel_h * s->kernel_w
                           : SG_SNN_ACT_MAX * abs_sum(d + off[SG_L3_BLOB_WEIGHTS] + c * row, row);
        uint64_t o;
        if (size[SG_L3_BLOB_BIAS] != 0u) {
            const int64_t b = (int32_t)sg_rd32(d + off[SG_L3_BLOB_BIAS] + 4u * c);
            per += (uint64_t)(b < 0 ? -b : b);
        }
        if (size[SG_L3_BLOB_REC_WEIGHTS] == 0u) {
            if (per >= SACC_LIMIT) {
                return 0;
            }
            continue;
        }
        for (o = c * hw; o < (c + 1u) * hw; ++o) {
            const uint64_t r = abs_sum(d + off[SG_L3_BLOB_REC_WEIGHTS] + o * n_out, n_out);
            if (per + SG_SNN_ACT_MAX * r >= SACC_LIMIT) {
                return 0;
            }
        }
    }
    return 1;
}

static uint64_t ceil4(uint64_t v)
{
    return (v + 3u) / 4u * 4u;
}

/* Entry @p si: fields, blobs, contents, bound; fills its view and adds its arena part. */
SG_NOINLINE static sg_status load_entry(sg_loader *L, uint32_t si, const uint16_t prev[3],
                                        uint64_t *arena)
{
    sg_model *m = L->m;
    const uint64_t base =
        (uint64_t)sg_rd32(L->d + SG_HDR_LAYERS_OFFSET) + (uint64_t)si * SG_FMT_LAYER_ENTRY_SIZE;
    const uint8_t *e = L->d + base;
    sg_slayer *s = &m->net.snn.layers[si];
    uint32_t off[SG_L3_N_BLOBS];
    uint32_t size[SG_L3_N_BLOBS];
    uint64_t n_rq = 0;
    uint64_t n_in;
    uint64_t n_out;
    uint32_t at;
    uint32_t b;
    uint32_t i;

    s->kind = sg_rd16(e + SG_L3_KIND);
    s->flags = sg_rd16(e + SG_L3_FLAGS);
    s->in_c = sg_rd16(e + SG_L3_IN_C);
    s->in_h = sg_rd16(e + SG_L3_IN_H);
    s->in_w = sg_rd16(e + SG_L3_IN_W);
    s->out_c = sg_rd16(e + SG_L3_OUT_C);
    s->out_h = sg_rd16(e + SG_L3_OUT_H);
    s->out_w = sg_rd16(e + SG_L3_OUT_W);
    s->kernel_h = sg_rd16(e + SG_L3_KERNEL_H);
    s->kernel_w = sg_rd16(e + SG_L3_KERNEL_W);
    s->stride_h = sg_rd16(e + SG_L3_STRIDE_H);
    s->stride_w = sg_rd16(e + SG_L3_STRIDE_W);
    s->pad_h = sg_rd16(e + SG_L3_PAD_H);
    s->pad_w = sg_rd16(e + SG_L3_PAD_W);
    s->groups = sg_rd16(e + SG_L3_GROUPS);
    s->max_delay = sg_rd16(e + SG_L3_MAX_DELAY);
    s->neuron = sg_rd16(e + SG_L3_NEURON);
    s->reset = sg_rd16(e + SG_L3_RESET);

    at = sg_snn_check_fields(s, prev, si == (uint32_t)m->n_stages - 1u);
    if (at != 0u) {
        return sfail(L, base, at - 1u);
    }
    if (sg_rd32(e + SG_L3_RESERVED) != 0u) {
        return sfail(L, base, SG_L3_RESERVED);
    }
    for (b = 0; b < SG_L3_N_BLOBS; ++b) {
        const uint64_t o = sg_rd32(e + SG_L3_BLOB_TABLE + 8u * b);
        const uint64_t sz = sg_rd32(e + SG_L3_BLOB_TABLE + 8u * b + 4u);
        off[b] = (uint32_t)o;
        size[b] = (uint32_t)sz;
        if (!blob_size_ok(b, sz, s, n_rq)) {
            return sg_load_fail(L, SG_ERR_BLOB, base + SG_L3_BLOB_TABLE + 8u * b + 4u,
                                sblob_size_names[b]);
        }
        if (b == SG_L3_BLOB_MULT) {
            n_rq = sz / 4u;
        }
        if (sz == 0u) {
            if (o != 0u) {
                return sg_load_fail(L, SG_ERR_BLOB, base + SG_L3_BLOB_TABLE + 8u * b,
                                    sblob_off_names[b]);
            }
            continue;
        }
        if (o % SG_FMT_ALIGN != 0u || o < SG_FMT_HEADER_SIZE || o + sz > L->n ||
            !sg_load_claim(L, o, o + sz)) {
            return sg_load_fail(L, SG_ERR_BLOB, base + SG_L3_BLOB_TABLE + 8u * b,
                                sblob_off_names[b]);
        }
    }
    /* contents */
    for (i = 0; i < n_rq; ++i) {
        if ((int32_t)sg_rd32(L->d + off[SG_L3_BLOB_MULT] + 4u * i) < 1) {
            return sg_load_fail(L, SG_ERR_VALUE, (uint64_t)off[SG_L3_BLOB_MULT] + 4u * i,
                                sblob_elem_names[SG_L3_BLOB_MULT]);
        }
    }
    for (i = 0; i < n_rq; ++i) {
        if (L->d[off[SG_L3_BLOB_SHIFT] + i] > SG_SNN_SHIFT_MAX) {
            return sg_load_fail(L, SG_ERR_VALUE, (uint64_t)off[SG_L3_BLOB_SHIFT] + i,
                                sblob_elem_names[SG_L3_BLOB_SHIFT]);
        }
    }
    for (i = 0; i < size[SG_L3_BLOB_DELAYS]; ++i) {
        if (L->d[off[SG_L3_BLOB_DELAYS] + i] > s->max_delay) {
            return sg_load_fail(L, SG_ERR_VALUE, (uint64_t)off[SG_L3_BLOB_DELAYS] + i,
                                sblob_elem_names[SG_L3_BLOB_DELAYS]);
        }
    }
    s->n_rec = size[SG_L3_BLOB_NEURON] / SNN_RECORD_BYTES;
    {
        const sg_status rc = check_records(L, s, off[SG_L3_BLOB_NEURON], s->n_rec);
        if (rc != SG_OK) {
            return rc;
        }
    }
    if (!acc_bound_ok(L->d, off, size, s)) {
        return sg_load_fail(L, SG_ERR_VALUE, base + SG_L3_KIND, "layers[].kind");
    }
    n_in = (uint64_t)s->in_c * s->in_h * s->in_w;
    n_out = (uint64_t)s->out_c * s->out_h * s->out_w;
    if (n_in > UINT32_MAX || n_out > UINT32_MAX) {
        L->too_big = 1; /* refused at the end, after the arena check, like the other kinds */
    }
    s->n_in = (uint32_t)n_in;
    s->n_out = (uint32_t)n_out;
    s->n_rq = (uint32_t)n_rq;
    *arena += ceil4(n_out) +
              4u * n_out *
                  (s->neuron == SG_NEURON_NONE      ? 0u
                   : s->neuron == SG_NEURON_CUBALIF ? 2u
                                                    : 1u) +
              (size[SG_L3_BLOB_DELAYS] != 0u ? ceil4(((uint64_t)s->max_delay + 1u) * n_in) : 0u);
    /* typed views only when the file is 8-aligned; sg_runtime_init refuses it otherwise */
    s->weights = NULL;
    s->bias = NULL;
    s->mult = NULL;
    s->shift = NULL;
    s->rec_weights = NULL;
    s->delays = NULL;
    s->neuron_params = NULL;
    if (((uintptr_t)L->d & (SG_FMT_ALIGN - 1u)) == 0u) {
        const uint8_t *d = L->d;
        s->weights =
            size[SG_L3_BLOB_WEIGHTS] ? (const int8_t *)(d + off[SG_L3_BLOB_WEIGHTS]) : NULL;
        s->bias = size[SG_L3_BLOB_BIAS] ? (const int32_t *)(const void *)(d + off[SG_L3_BLOB_BIAS])
                                        : NULL;
        s->mult = (const int32_t *)(const void *)(d + off[SG_L3_BLOB_MULT]);
        s->shift = d + off[SG_L3_BLOB_SHIFT];
        s->rec_weights =
            size[SG_L3_BLOB_REC_WEIGHTS] ? (const int8_t *)(d + off[SG_L3_BLOB_REC_WEIGHTS]) : NULL;
        s->delays = size[SG_L3_BLOB_DELAYS] ? d + off[SG_L3_BLOB_DELAYS] : NULL;
        s->neuron_params = size[SG_L3_BLOB_NEURON]
                               ? (const int32_t *)(const void *)(d + off[SG_L3_BLOB_NEURON])
                               : NULL;
    }
    return SG_OK;
}

/* Version 3 after the header and labels (FORMAT.md §15): the entries; the arena is the
 * §14 formula (counts, input activations, entries, accumulators, logits). */
sg_status sg_snn_load(sg_loader *L, uint64_t *arena_bytes, uint64_t *n_out)
{
    const sg_model *m = L->m;
    const uint64_t cells = (uint64_t)m->in_c * m->in_h * m->in_w;
    uint16_t prev[3];
    uint64_t arena = ceil4(2u * cells) + ceil4(cells);
    uint64_t n_max = 0;
    uint32_t si;
    prev[0] = m->in_c;
    prev[1] = m->in_h;
    prev[2] = m->in_w;
    for (si = 0; si < m->n_stages; ++si) {
        const sg_slayer *s = &m->net.snn.layers[si];
        const sg_status rc = load_entry(L, si, prev, &arena);
        const uint64_t n = (uint64_t)s->out_c * s->out_h * s->out_w;
        if (rc != SG_OK) {
            return rc;
        }
        if (n > n_max) {
            n_max = n;
        }
        prev[0] = s->out_c;
        prev[1] = s->out_h;
        prev[2] = s->out_w;
        *n_out = n;
    }
    *arena_bytes = arena + 4u * n_max + 4u * *n_out;
    return SG_OK;
}
