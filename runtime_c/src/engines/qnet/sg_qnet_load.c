/* SPDX-License-Identifier: MIT */
/*
 * Version 2 (imported int8 network) loader: the header fields whose rules are this kind's,
 * then each table entry in field order (the input entry first), its blobs and their
 * contents, and the accumulator bound (docs/FORMAT.md §7, §8, §10); the arena formula
 * (§9). Offsets, kinds, flags and limits: sg_format.h.
 */
#include "sg_qnet.h"

SG_STATIC_ASSERT(qnet_blobs_fit, SG_L2_N_BLOBS <= SG_LOAD_MAX_BLOBS);
SG_STATIC_ASSERT(qnet_fields_are_u16, SG_L2_RESERVED == 44u && SG_L2_ACT_MAX == 42u);

/* |accumulator| must stay below 2^31 (FORMAT.md §8). */
#define QACC_LIMIT (1ull << 31)

sg_status sg_qnet_check_header(sg_loader *L)
{
    const sg_model *m = L->m;
    /* the input entry and at least one layer, no Gamma buckets, any channels */
    if (m->n_stages < 2u || m->n_stages > SG_FMT_MAX_STAGES) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_N_STAGES, "n_stages");
    }
    if (sg_rd16(L->d + SG_HDR_N_BUCKETS) != 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_N_BUCKETS, "n_buckets");
    }
    if (m->in_c == 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_IN_C, "in_c");
    }
    return SG_OK;
}

static const char *const qblob_off_names[SG_L2_N_BLOBS] = {
    "layers[].weights_offset", "layers[].bias_offset",      "layers[].multiplier_offset",
    "layers[].shift_offset",   "layers[].reserved4_offset", "layers[].reserved5_offset"};
static const char *const qblob_size_names[SG_L2_N_BLOBS] = {
    "layers[].weights_size", "layers[].bias_size",      "layers[].multiplier_size",
    "layers[].shift_size",   "layers[].reserved4_size", "layers[].reserved5_size"};

/* Names of the entry's fields, by offset / 2 (every field up to `reserved` is 2 bytes). */
static sg_status qfail_field(sg_loader *L, uint64_t base, uint32_t at)
{
    static const char *const names[SG_L2_RESERVED / 2u + 1u] = {
        [SG_L2_KIND / 2u] = "layers[].kind",
        [SG_L2_FLAGS / 2u] = "layers[].flags",
        [SG_L2_IN_H / 2u] = "layers[].in_h",
        [SG_L2_IN_W / 2u] = "layers[].in_w",
        [SG_L2_IN_C / 2u] = "layers[].in_c",
        [SG_L2_OUT_H / 2u] = "layers[].out_h",
        [SG_L2_OUT_W / 2u] = "layers[].out_w",
        [SG_L2_OUT_C / 2u] = "layers[].out_c",
        [SG_L2_KERNEL_H / 2u] = "layers[].kernel_h",
        [SG_L2_KERNEL_W / 2u] = "layers[].kernel_w",
        [SG_L2_STRIDE_H / 2u] = "layers[].stride_h",
        [SG_L2_STRIDE_W / 2u] = "layers[].stride_w",
        [SG_L2_DILATION_H / 2u] = "layers[].dilation_h",
        [SG_L2_DILATION_W / 2u] = "layers[].dilation_w",
        [SG_L2_PAD_TOP / 2u] = "layers[].pad_top",
        [SG_L2_PAD_LEFT / 2u] = "layers[].pad_left",
        [SG_L2_DEPTH_MULTIPLIER / 2u] = "layers[].depth_multiplier",
        [SG_L2_FILTER_C / 2u] = "layers[].filter_c",
        [SG_L2_INPUT_OFFSET / 2u] = "layers[].input_offset",
        [SG_L2_OUTPUT_OFFSET / 2u] = "layers[].output_offset",
        [SG_L2_ACT_MIN / 2u] = "layers[].act_min",
        [SG_L2_ACT_MAX / 2u] = "layers[].act_max",
        [SG_L2_RESERVED / 2u] = "layers[].reserved",
    };
    return sg_load_fail(L, SG_ERR_LAYER, base + at, names[at / 2u]);
}

/* Geometry and scalar fields of an entry (FORMAT.md §7.1, §7.2) in pysg/sgm.py's order;
 * 0 if valid, else the offset of the first bad field inside the entry. */
static uint32_t check_qfields(const sg_model *m, const sg_qlayer *q, uint64_t prev_n)
{
    const uint32_t kind = q->kind;
    const int fc = kind == SG_QKIND_FC;
    const uint32_t kh = q->kernel_h;
    const uint32_t kw = q->kernel_w;
    if (q->in_h == 0u) {
        return SG_L2_IN_H;
    }
    if (q->in_w == 0u) {
        return SG_L2_IN_W;
    }
    if (q->in_c == 0u) {
        return SG_L2_IN_C;
    }
    if (kind == SG_QKIND_INPUT &&
        (q->in_h != m->in_h || q->in_w != m->in_w || q->in_c != m->in_c)) {
        return SG_L2_IN_H;
    }
    /* layers chain by element count (a dropped RESHAPE keeps the NHWC flat order) */
    if (kind != SG_QKIND_INPUT && (uint64_t)q->in_h * q->in_w * q->in_c != prev_n) {
        return SG_L2_IN_C;
    }
    if (q->out_h == 0u) {
        return SG_L2_OUT_H;
    }
    if (q->out_w == 0u) {
        return SG_L2_OUT_W;
    }
    if (q->out_c == 0u) {
        return SG_L2_OUT_C;
    }
    if (kind == SG_QKIND_INPUT) {
        if (q->out_h != q->in_h || q->out_w != q->in_w || q->out_c != q->in_c) {
            return SG_L2_OUT_H;
        }
        if (kh == 0u ? kw != 1u : (kw == 0u || kw % kh != 0u)) {
            return SG_L2_KERNEL_W;
        }
        if (q->stride_h != 1u) {
            return SG_L2_STRIDE_H;
        }
        if (q->stride_w != 1u) {
            return SG_L2_STRIDE_W;
        }
        if (q->dilation_h != 1u) {
            return SG_L2_DILATION_H;
        }
        if (q->dilation_w != 1u) {
            return SG_L2_DILATION_W;
        }
        if (q->pad_top != 0u) {
            return SG_L2_PAD_TOP;
        }
        if (q->pad_left != 0u) {
            return SG_L2_PAD_LEFT;
        }
        if ((q->depth_multiplier != 1u && q->depth_multiplier != 2u) ||
            (kh == 0u && q->depth_multiplier != 1u) ||
            (kh != 0u && (uint32_t)q->out_c != kh * q->depth_multiplier)) {
            return SG_L2_DEPTH_MULTIPLIER;
        }
        if (q->filter_c != 0u) {
            return SG_L2_FILTER_C;
        }
        if (q->input_offset != 0) {
            return SG_L2_INPUT_OFFSET;
        }
    } else {
        if (fc ? kh != 1u : kh == 0u) {
            return SG_L2_KERNEL_H;
        }
        if (fc ? kw != 1u : kw == 0u) {
            return SG_L2_KERNEL_W;
        }
        if (fc ? q->stride_h != 1u : q->stride_h == 0u) {
            return SG_L2_STRIDE_H;
        }
        if (fc ? q->stride_w != 1u : q->stride_w == 0u) {
            return SG_L2_STRIDE_W;
        }
        if ((fc || kind == SG_QKIND_POOL) ? q->dilation_h != 1u : q->dilation_h == 0u) {
            return SG_L2_DILATION_H;
        }
        if ((fc || kind == SG_QKIND_POOL) ? q->dilation_w != 1u : q->dilation_w == 0u) {
            return SG_L2_DILATION_W;
        }
        /* per axis: pad < extent dilation (kernel - 1) + 1, and every window starts
         * before the end of the image */
        if ((uint64_t)q->pad_top >= (uint64_t)q->dilation_h * (kh - 1u) + 1u) {
            return SG_L2_PAD_TOP;
        }
        if ((uint64_t)(q->out_h - 1u) * q->stride_h >= (uint64_t)q->in_h + q->pad_top) {
            return SG_L2_OUT_H;
        }
        if ((uint64_t)q->pad_left >= (uint64_t)q->dilation_w * (kw - 1u) + 1u) {
            return SG_L2_PAD_LEFT;
        }
        if ((uint64_t)(q->out_w - 1u) * q->stride_w >= (uint64_t)q->in_w + q->pad_left) {
            return SG_L2_OUT_W;
        }
        if (fc && (q->out_h != q->in_h || q->in_w != 1u || q->out_w != 1u)) {
            return SG_L2_OUT_H; /* [rows, 1, n] in and out */
        }
        if (kind == SG_QKIND_DEPTHWISE
                ? (q->depth_multiplier == 0u ||
                   (uint32_t)q->out_c != (uint32_t)q->in_c * q->depth_multiplier)
                : q->depth_multiplier != 1u) {
            return SG_L2_DEPTH_MULTIPLIER;
        }
        if (kind == SG_QKIND_POOL && q->out_c != q->in_c) {
            return SG_L2_OUT_C;
        }
        if (kind == SG_QKIND_CONV ? (q->filter_c == 0u || q->in_c % q->filter_c != 0u ||
                                     q->out_c % (q->in_c / q->filter_c) != 0u)
                                  : q->filter_c != (fc ? q->in_c : 0u)) {
            return SG_L2_FILTER_C;
        }
        if (kind == SG_QKIND_POOL) {
            if (q->input_offset != 0) {
                return SG_L2_INPUT_OFFSET;
            }
            if (q->output_offset != 0) {
                return SG_L2_OUTPUT_OFFSET;
            }
        } else if (q->input_offset < -127 || q->input_offset > 128) {
            return SG_L2_INPUT_OFFSET;
        }
    }
    if (q->output_offset < -128 || q->output_offset > 127) {
        return SG_L2_OUTPUT_OFFSET;
    }
    if (kind == SG_QKIND_INPUT) {
        if (q->act_min != -128) {
            return SG_L2_ACT_MIN;
        }
        if (q->act_max != 127) {
            return SG_L2_ACT_MAX;
        }
    } else if (q->act_min < -128 || q->act_min > q->act_max || q->act_max > 127) {
        return SG_L2_ACT_MIN;
    }
    return 0;
}

/* A blob size the file chooses: bias 0 or 4 C, multiplier 4 or 4 C, the LUT. */
#define QBLOB_ANY UINT64_MAX

/* Bytes blob @p b of a version 2 entry must have, or QBLOB_ANY. */
static uint64_t expected_qblob(uint32_t b, const sg_qlayer *q, uint64_t n_rq)
{
    const uint64_t c = q->out_c;
    const uint64_t taps = (uint64_t)q->kernel_h * q->kernel_w;
    if (q->kind == SG_QKIND_INPUT) {
        return b == SG_L2_BLOB_WEIGHTS && q->kernel_h >= 1u ? QBLOB_ANY : 0u; /* the LUT */
    }
    if (q->kind == SG_QKIND_POOL || b >= SG_L2_BLOB_RESERVED4) {
        return 0u;
    }
    switch (b) {
    case SG_L2_BLOB_WEIGHTS:
        return q->kind == SG_QKIND_CONV        ? taps * q->filter_c * c
               : q->kind == SG_QKIND_DEPTHWISE ? taps * c
                                               : (uint64_t)q->in_c * c;
    case SG_L2_BLOB_BIAS:
    case SG_L2_BLOB_MULTIPLIER:
        return QBLOB_ANY;
    default:
        return n_rq;
    }
}

/* FORMAT.md §8: |bias| + sum|w| max|x + input_offset| < 2^31 for every output channel,
 * with the whole kernel as the taps (the largest fan-in of any position). */
static int qacc_bound_ok(const uint8_t *d, const uint32_t off[SG_L2_N_BLOBS], uint32_t bias_size,
                         const sg_qlayer *q)
{
    /* |x + input_offset| <= max(128 - io, io + 127) for x in [-128, 127], io in [-127, 128] */
    const int32_t io = q->input_offset;
    const uint64_t xmax = (uint64_t)(128 - io > io + 127 ? 128 - io : io + 127);
    const uint32_t c_out = q->out_c;
    uint32_t o;
    if (q->kind == SG_QKIND_POOL) {
        return 128u * (uint64_t)q->kernel_h * q->kernel_w < QACC_LIMIT;
    }
    for (o = 0; o < c_out; ++o) {
        uint64_t sum = 0;
        /* w[t][ci][o] (conv, FC: ci < filter_c) or w[t][c][m] (depthwise: o = c M + m):
         * the weights of output channel o are every out_c-th byte from o */
        const uint64_t rows = (uint64_t)q->kernel_h * q->kernel_w *
                              (q->kind == SG_QKIND_DEPTHWISE ? 1u : q->filter_c);
        uint64_t r;
        const int64_t bias = bias_size ? (int32_t)sg_rd32(d + off[SG_L2_BLOB_BIAS] + 4u * o) : 0;
        for (r = 0; r < rows; ++r) {
            const int8_t w = (int8_t)d[off[SG_L2_BLOB_WEIGHTS] + o + r * c_out];
            sum += (uint64_t)(w < 0 ? -w : w);
        }
        if ((uint64_t)(bias < 0 ? -bias : bias) + sum * xmax >= QACC_LIMIT) {
            return 0;
        }
    }
    return 1;
}

/* Accumulators one input delta adds to at one output position (pysg SgmQLayer.run_length). */
static uint32_t qrun_length(const sg_qlayer *q)
{
    if (q->kind == SG_QKIND_POOL) {
        return 1u;
    }
    if (q->kind == SG_QKIND_DEPTHWISE) {
        return q->depth_multiplier;
    }
    return q->out_c / (q->in_c / q->filter_c);
}

/* The input entry's reserved word: 0, or with event input (S >= 1) the event-ring capacity
 * E in 1 .. (W + 1) cells, cells <= 65536 (a ring entry keeps its cell in 16 bits). */
static int ring_entries_ok(const sg_qlayer *q, uint32_t word)
{
    const uint64_t cells = (uint64_t)q->depth_multiplier * q->out_h * q->out_w;
    if (q->kind != SG_QKIND_INPUT || q->kernel_h == 0u) {
        return word == 0u;
    }
    return word != 0u && word <= ((uint64_t)q->kernel_w + 1u) * cells && cells <= 65536u;
}

static sg_status check_qlayer(sg_loader *L, uint32_t si, uint64_t prev_n, uint64_t *arena)
{
    sg_model *m = L->m;
    const uint64_t base =
        (uint64_t)sg_rd32(L->d + SG_HDR_LAYERS_OFFSET) + (uint64_t)si * SG_FMT_LAYER_ENTRY_SIZE;
    const uint8_t *e = L->d + base;
    sg_qlayer *q = &m->net.qnet.layers[si];
    const int is_last = si == (uint32_t)m->n_stages - 1u;
    uint32_t off[SG_L2_N_BLOBS];
    uint32_t size[SG_L2_N_BLOBS];
    uint64_t n_rq = 0;
    uint32_t at;
    uint32_t b;
    uint32_t i;

    q->kind = sg_rd16(e + SG_L2_KIND);
    q->flags = sg_rd16(e + SG_L2_FLAGS);
    q->in_h = sg_rd16(e + SG_L2_IN_H);
    q->in_w = sg_rd16(e + SG_L2_IN_W);
    q->in_c = sg_rd16(e + SG_L2_IN_C);
    q->out_h = sg_rd16(e + SG_L2_OUT_H);
    q->out_w = sg_rd16(e + SG_L2_OUT_W);
    q->out_c = sg_rd16(e + SG_L2_OUT_C);
    q->kernel_h = sg_rd16(e + SG_L2_KERNEL_H);
    q->kernel_w = sg_rd16(e + SG_L2_KERNEL_W);
    q->stride_h = sg_rd16(e + SG_L2_STRIDE_H);
    q->stride_w = sg_rd16(e + SG_L2_STRIDE_W);
    q->dilation_h = sg_rd16(e + SG_L2_DILATION_H);
    q->dilation_w = sg_rd16(e + SG_L2_DILATION_W);
    q->pad_top = sg_rd16(e + SG_L2_PAD_TOP);
    q->pad_left = sg_rd16(e + SG_L2_PAD_LEFT);
    q->depth_multiplier = sg_rd16(e + SG_L2_DEPTH_MULTIPLIER);
    q->filter_c = sg_rd16(e + SG_L2_FILTER_C);
    q->input_offset = (int16_t)sg_rd16(e + SG_L2_INPUT_OFFSET);
    q->output_offset = (int16_t)sg_rd16(e + SG_L2_OUTPUT_OFFSET);
    q->act_min = (int16_t)sg_rd16(e + SG_L2_ACT_MIN);
    q->act_max = (int16_t)sg_rd16(e + SG_L2_ACT_MAX);

    if ((si == 0u) != (q->kind == SG_QKIND_INPUT) ||
        (q->kind != SG_QKIND_INPUT && (q->kind < SG_QKIND_CONV || q->kind > SG_QKIND_POOL))) {
        return sg_load_fail(L, SG_ERR_LAYER, base + SG_L2_KIND, "layers[].kind");
    }
    if ((q->flags & ~SG_FLAG_OUTPUT) != 0u || ((q->flags & SG_FLAG_OUTPUT) != 0u) != is_last) {
        return sg_load_fail(L, SG_ERR_LAYER, base + SG_L2_FLAGS, "layers[].flags");
    }
    at = check_qfields(m, q, prev_n);
    if (at != 0u) {
        return qfail_field(L, base, at);
    }
    if (!ring_entries_ok(q, sg_rd32(e + SG_L2_RESERVED))) {
        return sg_load_fail(L, SG_ERR_LAYER, base + SG_L2_RESERVED, "layers[].reserved");
    }
    q->ring_entries = q->kind == SG_QKIND_INPUT ? sg_rd32(e + SG_L2_RESERVED) : 0u;
    for (b = 0; b < SG_L2_N_BLOBS; ++b) {
        const uint64_t o = sg_rd32(e + SG_L2_BLOB_TABLE + 8u * b);
        const uint64_t sz = sg_rd32(e + SG_L2_BLOB_TABLE + 8u * b + 4u);
        const uint64_t want = expected_qblob(b, q, n_rq);
        const uint64_t c = q->out_c;
        off[b] = (uint32_t)o;
        size[b] = (uint32_t)sz;
        if ((want != QBLOB_ANY && sz != want) ||
            (b == SG_L2_BLOB_BIAS && want == QBLOB_ANY && sz != 0u && sz != 4u * c) ||
            (b == SG_L2_BLOB_MULTIPLIER && want == QBLOB_ANY && sz != 4u && sz != 4u * c) ||
            (b == SG_L2_BLOB_WEIGHTS && want == QBLOB_ANY && (sz < 2u || sz > SG_FMT_LUT_MAX))) {
            return sg_load_fail(L, SG_ERR_BLOB, base + SG_L2_BLOB_TABLE + 8u * b + 4u,
                                qblob_size_names[b]);
        }
        if (b == SG_L2_BLOB_MULTIPLIER) {
            n_rq = sz / 4u;
        }
        if (sz == 0u) {
            if (o != 0u) {
                return sg_load_fail(L, SG_ERR_BLOB, base + SG_L2_BLOB_TABLE + 8u * b,
                                    qblob_off_names[b]);
            }
            continue;
        }
        if (o % SG_FMT_ALIGN != 0u || o < SG_FMT_HEADER_SIZE || o + sz > L->n ||
            !sg_load_claim(L, o, o + sz)) {
            return sg_load_fail(L, SG_ERR_BLOB, base + SG_L2_BLOB_TABLE + 8u * b,
                                qblob_off_names[b]);
        }
    }
    /* contents */
    for (i = 0; i < n_rq; ++i) {
        if ((int32_t)sg_rd32(L->d + off[SG_L2_BLOB_MULTIPLIER] + 4u * i) < 0) {
            return sg_load_fail(L, SG_ERR_VALUE, (uint64_t)off[SG_L2_BLOB_MULTIPLIER] + 4u * i,
                                "layers[].multiplier[]");
        }
    }
    for (i = 0; i < n_rq; ++i) {
        const int8_t sh = (int8_t)L->d[off[SG_L2_BLOB_SHIFT] + i];
        if (sh < -31 || sh > 30) {
            return sg_load_fail(L, SG_ERR_VALUE, (uint64_t)off[SG_L2_BLOB_SHIFT] + i,
                                "layers[].shift[]");
        }
    }
    if (q->kind == SG_QKIND_INPUT && q->kernel_h >= 1u &&
        (int8_t)L->d[off[SG_L2_BLOB_WEIGHTS]] != q->output_offset) {
        return sg_load_fail(L, SG_ERR_VALUE, off[SG_L2_BLOB_WEIGHTS],
                            "layers[].weights[]"); /* lut[0]: no events */
    }
    if (q->kind != SG_QKIND_INPUT && !qacc_bound_ok(L->d, off, size[SG_L2_BLOB_BIAS], q)) {
        return sg_load_fail(L, SG_ERR_VALUE, base, "layers[].kind"); /* as pysg/sgm.py */
    }
    q->n_in = (uint32_t)((uint64_t)q->in_h * q->in_w * q->in_c);
    q->n_out = (uint32_t)((uint64_t)q->out_h * q->out_w * q->out_c);
    q->n_rq = (uint32_t)n_rq;
    q->lut_len = q->kind == SG_QKIND_INPUT ? size[SG_L2_BLOB_WEIGHTS] : 0u;
    {
        const uint64_t n_out = (uint64_t)q->out_h * q->out_w * q->out_c;
        if (si == 0u) { /* input tensor; open counts, slice sums, slot starts + counts, ring */
            const uint64_t cells = (uint64_t)q->depth_multiplier * q->out_h * q->out_w;
            *arena += (n_out + 3u) / 4u * 4u;
            if (q->kernel_h >= 1u) {
                *arena += (2u * cells + 3u) / 4u * 4u + 4u * (uint64_t)q->kernel_h * cells +
                          8u * ((uint64_t)q->kernel_w + 1u) + 4u * (uint64_t)q->ring_entries;
            }
        } else { /* acc, q, touched flags, touched runs */
            *arena += 4u * n_out + 2u * ((n_out + 3u) / 4u * 4u) + 4u * (n_out / qrun_length(q));
        }
    }
    /* typed views only when the file is 8-aligned; sg_runtime_init refuses it otherwise */
    q->weights = NULL;
    q->bias = NULL;
    q->multiplier = NULL;
    q->shift = NULL;
    if (((uintptr_t)L->d & (SG_FMT_ALIGN - 1u)) == 0u) {
        q->weights = size[SG_L2_BLOB_WEIGHTS] != 0u
                         ? (const int8_t *)(const void *)(L->d + off[SG_L2_BLOB_WEIGHTS])
                         : NULL;
        q->bias = size[SG_L2_BLOB_BIAS] != 0u
                      ? (const int32_t *)(const void *)(L->d + off[SG_L2_BLOB_BIAS])
                      : NULL;
        q->multiplier = size[SG_L2_BLOB_MULTIPLIER] != 0u
                            ? (const int32_t *)(const void *)(L->d + off[SG_L2_BLOB_MULTIPLIER])
                            : NULL;
        q->shift = size[SG_L2_BLOB_SHIFT] != 0u
                       ? (const int8_t *)(const void *)(L->d + off[SG_L2_BLOB_SHIFT])
                       : NULL;
    }
    return SG_OK;
}

/* Version 2 after the header and labels (FORMAT.md §10): the entries; the arena is the
 * §9 formula (the input entry's state, then each layer's). */
sg_status sg_qnet_load(sg_loader *L, uint64_t *arena_bytes, uint64_t *n_out)
{
    const sg_model *m = L->m;
    uint64_t arena = 0;
    uint64_t prev_n = 0;
    uint32_t si;
    for (si = 0; si < m->n_stages; ++si) {
        const sg_qlayer *q = &m->net.qnet.layers[si];
        const sg_status rc = check_qlayer(L, si, prev_n, &arena);
        if (rc != SG_OK) {
            return rc;
        }
        prev_n = (uint64_t)q->out_h * q->out_w * q->out_c;
    }
    *n_out = prev_n;
    *arena_bytes = arena;
    return SG_OK;
}
