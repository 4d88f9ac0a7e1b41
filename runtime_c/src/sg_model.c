/* SPDX-License-Identifier: MIT */
/*
 * The .sgm loader: every check of docs/FORMAT.md §5 in that order, in place, never
 * reading a byte before checking that it lies inside the buffer. The first failing
 * check sets error_offset / error_field like pysg/sgm.py's SgmFormatError (layer and
 * label names carry "[]" instead of the index: the index follows from the offset).
 */
#include "sg_internal.h"

#define HEADER_SIZE 64u
#define LAYER_ENTRY_SIZE 96u
#define ALIGN 8u
#define Q15_ONE 32768u
#define THETA_MAX (1L << 29)
#define VSHIFT_MAX 62u
#define KIND_DENSE 1u
#define KIND_CONV2D 2u
#define FLAG_OUTPUT 1u
#define FLAG_DELAYS 2u
#define N_BLOBS 7u
#define BLOB_TABLE 40u
#define MAX_REGIONS (3u + SG_MAX_STAGES * N_BLOBS)

/* ---------------------------------------------------------------- CRC-32 */

/* zlib CRC-32, reflected polynomial 0xEDB88320, four bits at a time (64-byte table). */
static const uint32_t crc_nibble[16] = {0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu,
                                        0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
                                        0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
                                        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t sg_crc32(uint32_t crc, const uint8_t *data, size_t n)
{
    size_t i;
    crc = ~crc;
    for (i = 0; i < n; ++i) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
        crc = (crc >> 4) ^ crc_nibble[crc & 15u];
    }
    return ~crc;
}

/* ---------------------------------------------------------------- helpers */

/* [lo, hi) inside the buffer; file_size (u32) equals the length, so 32 bits suffice */
typedef struct region {
    uint32_t lo, hi;
} region;

typedef struct loader {
    sg_model *m;
    const uint8_t *d;
    uint64_t n;
    region reg[MAX_REGIONS];
    uint32_t n_reg;
    int too_big; /* a valid file whose sizes exceed 32-bit indexing */
} loader;

static sg_status fail(loader *L, sg_status st, uint64_t offset, const char *field)
{
    L->m->error_offset = (uint32_t)offset;
    L->m->error_field = field;
    return st;
}

static int overlaps(const loader *L, uint64_t lo, uint64_t hi)
{
    uint32_t r;
    for (r = 0; r < L->n_reg; ++r) {
        if (lo < L->reg[r].hi && L->reg[r].lo < hi) {
            return 1;
        }
    }
    return 0;
}

/* Strict UTF-8 (as Python's decoder): no overlongs, no surrogates, <= U+10FFFF. */
static int valid_utf8(const uint8_t *s, uint32_t n)
{
    uint32_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        uint32_t len;
        uint32_t cp;
        uint32_t k;
        if (c < 0x80u) {
            ++i;
            continue;
        }
        if (c >= 0xC2u && c <= 0xDFu) {
            len = 2;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0u && c <= 0xEFu) {
            len = 3;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0u && c <= 0xF4u) {
            len = 4;
            cp = c & 0x07u;
        } else {
            return 0;
        }
        if (n - i < len) {
            return 0;
        }
        for (k = 1; k < len; ++k) {
            if ((s[i + k] & 0xC0u) != 0x80u) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((len == 3 && (cp < 0x800u || (cp >= 0xD800u && cp <= 0xDFFFu))) ||
            (len == 4 && (cp < 0x10000u || cp > 0x10FFFFu))) {
            return 0;
        }
        i += len;
    }
    return 1;
}

static const char *const blob_off_names[N_BLOBS] = {
    "layers[].weights_offset", "layers[].bias_offset",  "layers[].vweights_offset",
    "layers[].vshift_offset",  "layers[].theta_offset", "layers[].alpha_offset",
    "layers[].delays_offset"};
static const char *const blob_size_names[N_BLOBS] = {
    "layers[].weights_size", "layers[].bias_size",  "layers[].vweights_size",
    "layers[].vshift_size",  "layers[].theta_size", "layers[].alpha_size",
    "layers[].delays_size"};

/* ---------------------------------------------------------------- header */

static sg_status check_header(loader *L)
{
    const uint8_t *d = L->d;
    sg_model *m = L->m;
    uint32_t ds;
    uint32_t i;
    int qnet;
    static const uint8_t magic[4] = {'P', 'S', 'G', 'M'};

    if (L->n < HEADER_SIZE) {
        return fail(L, SG_ERR_TRUNCATED, L->n, "header");
    }
    for (i = 0; i < 4u; ++i) {
        if (d[i] != magic[i]) {
            return fail(L, SG_ERR_MAGIC, 0, "magic");
        }
    }
    if (sg_rd32(d + 4) != SG_FORMAT_VERSION && sg_rd32(d + 4) != SG_FORMAT_VERSION_QNET) {
        return fail(L, SG_ERR_VERSION, 4, "format_version");
    }
    m->format_version = (uint16_t)sg_rd32(d + 4);
    qnet = m->format_version == SG_FORMAT_VERSION_QNET;
    if (sg_rd32(d + 8) != HEADER_SIZE) {
        return fail(L, SG_ERR_VERSION, 8, "header_size");
    }
    if ((uint64_t)sg_rd32(d + 12) != L->n) {
        return fail(L, SG_ERR_TRUNCATED, 12, "file_size");
    }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* lets a fuzzer past the CRCs */
    if (sg_rd32(d + 60) != sg_crc32(0, d, 60)) {
        return fail(L, SG_ERR_CRC, 60, "header_crc32");
    }
    if (sg_rd32(d + 16) != sg_crc32(0, d + HEADER_SIZE, (size_t)(L->n - HEADER_SIZE))) {
        return fail(L, SG_ERR_CRC, 16, "payload_crc32");
    }
#endif
    m->size = (uint32_t)L->n;
    m->arena_bytes = sg_rd32(d + 20);
    m->dt_us = sg_rd32(d + 24);
    m->n_stages = sg_rd16(d + 28);
    m->n_buckets = sg_rd16(d + 30);
    m->in_c = sg_rd16(d + 32);
    m->in_h = sg_rd16(d + 34);
    m->in_w = sg_rd16(d + 36);
    m->sensor_w = sg_rd16(d + 38);
    m->sensor_h = sg_rd16(d + 40);
    m->downsample = sg_rd16(d + 42);
    m->n_classes = sg_rd16(d + 44);
    if (m->dt_us == 0u) {
        return fail(L, SG_ERR_HEADER, 24, "dt_us");
    }
    /* version 2: the input entry and at least one layer, no Gamma buckets, any channels */
    if (m->n_stages < (qnet ? 2u : 1u) || m->n_stages > SG_MAX_STAGES) {
        return fail(L, SG_ERR_HEADER, 28, "n_stages");
    }
    if (qnet ? m->n_buckets != 0u : (m->n_buckets < 1u || m->n_buckets > SG_MAX_BUCKETS)) {
        return fail(L, SG_ERR_HEADER, 30, "n_buckets");
    }
    if (qnet ? m->in_c == 0u : (m->in_c != 1u && m->in_c != 2u)) {
        return fail(L, SG_ERR_HEADER, 32, "in_c");
    }
    if (m->in_h == 0u) {
        return fail(L, SG_ERR_HEADER, 34, "in_h");
    }
    if (m->in_w == 0u) {
        return fail(L, SG_ERR_HEADER, 36, "in_w");
    }
    if (m->sensor_w == 0u) {
        return fail(L, SG_ERR_HEADER, 38, "sensor_w");
    }
    if (m->sensor_h == 0u) {
        return fail(L, SG_ERR_HEADER, 40, "sensor_h");
    }
    ds = m->downsample;
    if (ds == 0u) {
        return fail(L, SG_ERR_HEADER, 42, "downsample");
    }
    if (m->sensor_w % ds != 0u || m->sensor_h % ds != 0u) {
        return fail(L, SG_ERR_HEADER, 42, "downsample");
    }
    if (m->in_h != m->sensor_h / ds) {
        return fail(L, SG_ERR_HEADER, 34, "in_h");
    }
    if (m->in_w != m->sensor_w / ds) {
        return fail(L, SG_ERR_HEADER, 36, "in_w");
    }
    if (m->n_classes == 0u) {
        return fail(L, SG_ERR_HEADER, 44, "n_classes");
    }
    if (sg_rd16(d + 46) != SG_LABEL_SIZE) {
        return fail(L, SG_ERR_HEADER, 46, "label_size");
    }
    if (sg_rd32(d + 56) != LAYER_ENTRY_SIZE) {
        return fail(L, SG_ERR_HEADER, 56, "layer_entry_size");
    }
    L->reg[0].lo = 0;
    L->reg[0].hi = HEADER_SIZE;
    L->n_reg = 1;
    for (i = 0; i < 2u; ++i) {
        const uint32_t at = i == 0u ? 48u : 52u;
        const char *name = i == 0u ? "labels_offset" : "layers_offset";
        const uint64_t off = sg_rd32(d + at);
        const uint64_t size = i == 0u ? (uint64_t)m->n_classes * SG_LABEL_SIZE
                                      : (uint64_t)m->n_stages * LAYER_ENTRY_SIZE;
        if (off % ALIGN != 0u) {
            return fail(L, SG_ERR_HEADER, at, name);
        }
        if (off < HEADER_SIZE || off + size > L->n) {
            return fail(L, SG_ERR_HEADER, at, name);
        }
        if (overlaps(L, off, off + size)) {
            return fail(L, SG_ERR_HEADER, at, name);
        }
        L->reg[L->n_reg].lo = (uint32_t)off;
        L->reg[L->n_reg].hi = (uint32_t)(off + size);
        L->n_reg++;
    }
    return SG_OK;
}

static sg_status check_labels(loader *L)
{
    const uint32_t base = sg_rd32(L->d + 48);
    uint32_t i;
    for (i = 0; i < L->m->n_classes; ++i) {
        const uint32_t at = base + i * SG_LABEL_SIZE;
        const uint8_t *s = L->d + at;
        uint32_t len = 0;
        uint32_t k;
        while (len < SG_LABEL_SIZE && s[len] != 0u) {
            ++len;
        }
        if (len == 0u) {
            return fail(L, SG_ERR_LABEL, at, "labels[]");
        }
        if (len == SG_LABEL_SIZE) {
            return fail(L, SG_ERR_LABEL, at, "labels[]");
        }
        for (k = len; k < SG_LABEL_SIZE; ++k) {
            if (s[k] != 0u) {
                return fail(L, SG_ERR_LABEL, at, "labels[]");
            }
        }
        if (!valid_utf8(s, len)) {
            return fail(L, SG_ERR_LABEL, at, "labels[]");
        }
    }
    L->m->labels = (const char *)(L->d + base);
    return SG_OK;
}

/* ---------------------------------------------------------------- layers */

static uint64_t expected_blob(uint32_t b, const sg_stage *st, uint32_t k, int is_output,
                              int has_delays)
{
    const uint64_t c_out = st->out_c;
    const uint64_t n_in = (uint64_t)st->syn_c * st->syn_h * st->syn_w;
    switch (b) {
    case 0:
        return c_out *
               (st->kind == KIND_DENSE ? n_in : (uint64_t)st->syn_c * st->kernel * st->kernel);
    case 1:
        return 4u * c_out;
    case 2:
        return 2u * c_out * k;
    case 3:
        return c_out;
    case 4:
        return is_output ? 0u : 4u * c_out;
    case 5:
        return 2u * (uint64_t)k;
    default:
        return has_delays ? n_in : 0u;
    }
}

static sg_status check_geometry(loader *L, uint64_t base, sg_stage *st, const uint16_t prev[3])
{
    if (st->in_c != prev[0]) {
        return fail(L, SG_ERR_LAYER, base + 4, "layers[].in_c");
    }
    if (st->in_h != prev[1]) {
        return fail(L, SG_ERR_LAYER, base + 6, "layers[].in_h");
    }
    if (st->in_w != prev[2]) {
        return fail(L, SG_ERR_LAYER, base + 8, "layers[].in_w");
    }
    if (st->pool == 0u) {
        return fail(L, SG_ERR_LAYER, base + 10, "layers[].pool");
    }
    if (st->syn_c != st->in_c) {
        return fail(L, SG_ERR_LAYER, base + 12, "layers[].syn_c");
    }
    if (st->syn_h != st->in_h / st->pool || st->syn_h == 0u) {
        return fail(L, SG_ERR_LAYER, base + 14, "layers[].syn_h");
    }
    if (st->syn_w != st->in_w / st->pool || st->syn_w == 0u) {
        return fail(L, SG_ERR_LAYER, base + 16, "layers[].syn_w");
    }
    if (st->out_c == 0u) {
        return fail(L, SG_ERR_LAYER, base + 18, "layers[].out_c");
    }
    if (st->kind == KIND_DENSE) {
        if (st->out_h != 1u) {
            return fail(L, SG_ERR_LAYER, base + 20, "layers[].out_h");
        }
        if (st->out_w != 1u) {
            return fail(L, SG_ERR_LAYER, base + 22, "layers[].out_w");
        }
        if (st->kernel != 1u) {
            return fail(L, SG_ERR_LAYER, base + 24, "layers[].kernel");
        }
        if (st->stride != 1u) {
            return fail(L, SG_ERR_LAYER, base + 26, "layers[].stride");
        }
        if (st->padding != 0u) {
            return fail(L, SG_ERR_LAYER, base + 28, "layers[].padding");
        }
    } else {
        int64_t span;
        int64_t want;
        if (st->kernel == 0u) {
            return fail(L, SG_ERR_LAYER, base + 24, "layers[].kernel");
        }
        if (st->stride == 0u) {
            return fail(L, SG_ERR_LAYER, base + 26, "layers[].stride");
        }
        if (st->padding >= st->kernel) {
            return fail(L, SG_ERR_LAYER, base + 28, "layers[].padding");
        }
        span = (int64_t)st->syn_h + 2 * (int64_t)st->padding - (int64_t)st->kernel;
        want = span >= 0 ? span / st->stride + 1 : 0;
        if ((int64_t)st->out_h != want || want == 0) {
            return fail(L, SG_ERR_LAYER, base + 20, "layers[].out_h");
        }
        span = (int64_t)st->syn_w + 2 * (int64_t)st->padding - (int64_t)st->kernel;
        want = span >= 0 ? span / st->stride + 1 : 0;
        if ((int64_t)st->out_w != want || want == 0) {
            return fail(L, SG_ERR_LAYER, base + 22, "layers[].out_w");
        }
    }
    return SG_OK;
}

static sg_status check_contents(loader *L, const uint32_t off[N_BLOBS], sg_stage *st, uint32_t k,
                                int is_output, int has_delays)
{
    const uint8_t *d = L->d;
    uint32_t i;
    for (i = 0; i < st->out_c; ++i) {
        if (d[off[3] + i] > VSHIFT_MAX) {
            return fail(L, SG_ERR_VALUE, (uint64_t)off[3] + i, "layers[].vshift[]");
        }
    }
    for (i = 0; i < k; ++i) {
        if (sg_rd16(d + off[5] + 2u * i) >= Q15_ONE) {
            return fail(L, SG_ERR_VALUE, (uint64_t)off[5] + 2u * i, "layers[].alpha[]");
        }
    }
    if (!is_output) {
        for (i = 0; i < st->out_c; ++i) {
            const int32_t th = (int32_t)sg_rd32(d + off[4] + 4u * i);
            if (th < 1 || th > THETA_MAX) {
                return fail(L, SG_ERR_VALUE, (uint64_t)off[4] + 4u * i, "layers[].theta[]");
            }
        }
    }
    if (has_delays) {
        for (i = 0; i < st->n_in; ++i) {
            if (d[off[6] + i] > st->max_delay) {
                return fail(L, SG_ERR_VALUE, (uint64_t)off[6] + i, "layers[].delays[]");
            }
        }
    }
    return SG_OK;
}

static sg_status check_layer(loader *L, uint32_t si, const uint16_t prev[3], uint64_t *arena)
{
    sg_model *m = L->m;
    const uint64_t base = (uint64_t)sg_rd32(L->d + 52) + (uint64_t)si * LAYER_ENTRY_SIZE;
    const uint8_t *e = L->d + base;
    sg_stage *st = &m->stages[si];
    const uint32_t k = m->n_buckets;
    int is_output;
    int has_delays;
    int32_t fbits;
    uint32_t off[N_BLOBS];
    uint32_t b;
    sg_status rc;

    st->kind = sg_rd16(e + 0);
    st->flags = sg_rd16(e + 2);
    st->in_c = sg_rd16(e + 4);
    st->in_h = sg_rd16(e + 6);
    st->in_w = sg_rd16(e + 8);
    st->pool = sg_rd16(e + 10);
    st->syn_c = sg_rd16(e + 12);
    st->syn_h = sg_rd16(e + 14);
    st->syn_w = sg_rd16(e + 16);
    st->out_c = sg_rd16(e + 18);
    st->out_h = sg_rd16(e + 20);
    st->out_w = sg_rd16(e + 22);
    st->kernel = sg_rd16(e + 24);
    st->stride = sg_rd16(e + 26);
    st->padding = sg_rd16(e + 28);
    st->max_delay = sg_rd16(e + 30);
    fbits = (int32_t)sg_rd32(e + 32);

    if (st->kind != KIND_DENSE && st->kind != KIND_CONV2D) {
        return fail(L, SG_ERR_LAYER, base + 0, "layers[].kind");
    }
    if ((st->flags & ~(FLAG_OUTPUT | FLAG_DELAYS)) != 0u) {
        return fail(L, SG_ERR_LAYER, base + 2, "layers[].flags");
    }
    is_output = (st->flags & FLAG_OUTPUT) != 0u;
    if (is_output != (si == (uint32_t)m->n_stages - 1u)) {
        return fail(L, SG_ERR_LAYER, base + 2, "layers[].flags");
    }
    has_delays = (st->flags & FLAG_DELAYS) != 0u;
    rc = check_geometry(L, base, st, prev);
    if (rc != SG_OK) {
        return rc;
    }
    if (!has_delays && st->max_delay != 0u) {
        return fail(L, SG_ERR_LAYER, base + 30, "layers[].max_delay");
    }
    if (has_delays && st->max_delay > 255u) {
        return fail(L, SG_ERR_LAYER, base + 30, "layers[].max_delay");
    }
    if (fbits < -32 || fbits > 32) {
        return fail(L, SG_ERR_LAYER, base + 32, "layers[].x_frac_bits");
    }
    if (sg_rd32(e + 36) != 0u) {
        return fail(L, SG_ERR_LAYER, base + 36, "layers[].reserved");
    }
    for (b = 0; b < N_BLOBS; ++b) {
        const uint64_t o = sg_rd32(e + BLOB_TABLE + 8u * b);
        const uint64_t size = sg_rd32(e + BLOB_TABLE + 8u * b + 4u);
        const uint64_t want = expected_blob(b, st, k, is_output, has_delays);
        off[b] = (uint32_t)o;
        if (size != want) {
            return fail(L, SG_ERR_BLOB, base + BLOB_TABLE + 8u * b + 4u, blob_size_names[b]);
        }
        if (want == 0u) {
            if (o != 0u) {
                return fail(L, SG_ERR_BLOB, base + BLOB_TABLE + 8u * b, blob_off_names[b]);
            }
            continue;
        }
        if (o % ALIGN != 0u) {
            return fail(L, SG_ERR_BLOB, base + BLOB_TABLE + 8u * b, blob_off_names[b]);
        }
        if (o < HEADER_SIZE || o + size > L->n) {
            return fail(L, SG_ERR_BLOB, base + BLOB_TABLE + 8u * b, blob_off_names[b]);
        }
        if (overlaps(L, o, o + size)) {
            return fail(L, SG_ERR_BLOB, base + BLOB_TABLE + 8u * b, blob_off_names[b]);
        }
        L->reg[L->n_reg].lo = (uint32_t)o;
        L->reg[L->n_reg].hi = (uint32_t)(o + size);
        L->n_reg++;
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
    *arena += 4u * ((uint64_t)k * ((uint64_t)st->out_c * st->out_h * st->out_w) +
                    (is_output ? 0u : (uint64_t)st->out_c * st->out_h * st->out_w) +
                    (has_delays ? ((uint64_t)st->max_delay + 1u) * st->n_in : 0u));
    /* typed views only when the file is 8-aligned (blobs then are naturally aligned);
     * sg_runtime_init refuses a model without them */
    if (((uintptr_t)L->d & (ALIGN - 1u)) == 0u) {
        st->weights = (const int8_t *)(const void *)(L->d + off[0]);
        st->bias = (const int32_t *)(const void *)(L->d + off[1]);
        st->vweights = (const int16_t *)(const void *)(L->d + off[2]);
        st->vshift = L->d + off[3];
        st->theta = is_output ? NULL : (const int32_t *)(const void *)(L->d + off[4]);
        st->alpha = (const uint16_t *)(const void *)(L->d + off[5]);
        st->delays = has_delays ? L->d + off[6] : NULL;
    }
    return SG_OK;
}

/* ---------------------------------------------------------------- version 2 layers */

#define QKIND_CONV 3u
#define QKIND_DEPTHWISE 4u
#define QKIND_FC 5u
#define QKIND_POOL 6u
#define QKIND_INPUT 16u
#define QN_BLOBS 6u
#define QBLOB_TABLE 48u
#define QLUT_MAX 65536u
#define QACC_LIMIT (1ull << 31)

static const char *const qblob_off_names[QN_BLOBS] = {
    "layers[].weights_offset", "layers[].bias_offset",      "layers[].multiplier_offset",
    "layers[].shift_offset",   "layers[].reserved4_offset", "layers[].reserved5_offset"};
static const char *const qblob_size_names[QN_BLOBS] = {
    "layers[].weights_size", "layers[].bias_size",      "layers[].multiplier_size",
    "layers[].shift_size",   "layers[].reserved4_size", "layers[].reserved5_size"};

static sg_status qfail_field(loader *L, uint64_t base, uint32_t at)
{
    static const char *const names[] = {"layers[].kind",
                                        "layers[].flags",
                                        "layers[].in_h",
                                        "layers[].in_w",
                                        "layers[].in_c",
                                        "layers[].out_h",
                                        "layers[].out_w",
                                        "layers[].out_c",
                                        "layers[].kernel_h",
                                        "layers[].kernel_w",
                                        "layers[].stride_h",
                                        "layers[].stride_w",
                                        "layers[].dilation_h",
                                        "layers[].dilation_w",
                                        "layers[].pad_top",
                                        "layers[].pad_left",
                                        "layers[].depth_multiplier",
                                        "layers[].filter_c",
                                        "layers[].input_offset",
                                        "layers[].output_offset",
                                        "layers[].act_min",
                                        "layers[].act_max",
                                        "layers[].reserved"};
    return fail(L, SG_ERR_LAYER, base + at, names[at / 2u]);
}

/* Geometry and scalar fields of an entry (FORMAT.md §7.1, §7.2) in pysg/sgm.py's order;
 * 0 if valid, else the offset of the first bad field inside the entry. */
static uint32_t check_qfields(const sg_model *m, const sg_qlayer *q, uint64_t prev_n)
{
    const uint32_t kind = q->kind;
    const int fc = kind == QKIND_FC;
    const uint32_t kh = q->kernel_h;
    const uint32_t kw = q->kernel_w;
    if (q->in_h == 0u) {
        return 4;
    }
    if (q->in_w == 0u) {
        return 6;
    }
    if (q->in_c == 0u) {
        return 8;
    }
    if (kind == QKIND_INPUT && (q->in_h != m->in_h || q->in_w != m->in_w || q->in_c != m->in_c)) {
        return 4;
    }
    /* layers chain by element count (a dropped RESHAPE keeps the NHWC flat order) */
    if (kind != QKIND_INPUT && (uint64_t)q->in_h * q->in_w * q->in_c != prev_n) {
        return 8;
    }
    if (q->out_h == 0u) {
        return 10;
    }
    if (q->out_w == 0u) {
        return 12;
    }
    if (q->out_c == 0u) {
        return 14;
    }
    if (kind == QKIND_INPUT) {
        if (q->out_h != q->in_h || q->out_w != q->in_w || q->out_c != q->in_c) {
            return 10;
        }
        if (kh == 0u ? kw != 1u : (kw == 0u || kw % kh != 0u)) {
            return 18;
        }
        if (q->stride_h != 1u) {
            return 20;
        }
        if (q->stride_w != 1u) {
            return 22;
        }
        if (q->dilation_h != 1u) {
            return 24;
        }
        if (q->dilation_w != 1u) {
            return 26;
        }
        if (q->pad_top != 0u) {
            return 28;
        }
        if (q->pad_left != 0u) {
            return 30;
        }
        if ((q->depth_multiplier != 1u && q->depth_multiplier != 2u) ||
            (kh == 0u && q->depth_multiplier != 1u) ||
            (kh != 0u && (uint32_t)q->out_c != kh * q->depth_multiplier)) {
            return 32;
        }
        if (q->filter_c != 0u) {
            return 34;
        }
        if (q->input_offset != 0) {
            return 36;
        }
    } else {
        if (fc ? kh != 1u : kh == 0u) {
            return 16;
        }
        if (fc ? kw != 1u : kw == 0u) {
            return 18;
        }
        if (fc ? q->stride_h != 1u : q->stride_h == 0u) {
            return 20;
        }
        if (fc ? q->stride_w != 1u : q->stride_w == 0u) {
            return 22;
        }
        if ((fc || kind == QKIND_POOL) ? q->dilation_h != 1u : q->dilation_h == 0u) {
            return 24;
        }
        if ((fc || kind == QKIND_POOL) ? q->dilation_w != 1u : q->dilation_w == 0u) {
            return 26;
        }
        /* per axis: pad < extent dilation (kernel - 1) + 1, and every window starts
         * before the end of the image */
        if ((uint64_t)q->pad_top >= (uint64_t)q->dilation_h * (kh - 1u) + 1u) {
            return 28;
        }
        if ((uint64_t)(q->out_h - 1u) * q->stride_h >= (uint64_t)q->in_h + q->pad_top) {
            return 10;
        }
        if ((uint64_t)q->pad_left >= (uint64_t)q->dilation_w * (kw - 1u) + 1u) {
            return 30;
        }
        if ((uint64_t)(q->out_w - 1u) * q->stride_w >= (uint64_t)q->in_w + q->pad_left) {
            return 12;
        }
        if (fc && (q->out_h != q->in_h || q->in_w != 1u || q->out_w != 1u)) {
            return 10; /* [rows, 1, n] in and out */
        }
        if (kind == QKIND_DEPTHWISE
                ? (q->depth_multiplier == 0u ||
                   (uint32_t)q->out_c != (uint32_t)q->in_c * q->depth_multiplier)
                : q->depth_multiplier != 1u) {
            return 32;
        }
        if (kind == QKIND_POOL && q->out_c != q->in_c) {
            return 14;
        }
        if (kind == QKIND_CONV ? (q->filter_c == 0u || q->in_c % q->filter_c != 0u ||
                                  q->out_c % (q->in_c / q->filter_c) != 0u)
                               : q->filter_c != (fc ? q->in_c : 0u)) {
            return 34;
        }
        if (kind == QKIND_POOL) {
            if (q->input_offset != 0) {
                return 36;
            }
            if (q->output_offset != 0) {
                return 38;
            }
        } else if (q->input_offset < -127 || q->input_offset > 128) {
            return 36;
        }
    }
    if (q->output_offset < -128 || q->output_offset > 127) {
        return 38;
    }
    if (kind == QKIND_INPUT) {
        if (q->act_min != -128) {
            return 40;
        }
        if (q->act_max != 127) {
            return 42;
        }
    } else if (q->act_min < -128 || q->act_min > q->act_max || q->act_max > 127) {
        return 40;
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
    if (q->kind == QKIND_INPUT) {
        return b == 0u && q->kernel_h >= 1u ? QBLOB_ANY : 0u;
    }
    if (q->kind == QKIND_POOL || b >= 4u) {
        return 0u;
    }
    switch (b) {
    case 0:
        return q->kind == QKIND_CONV        ? taps * q->filter_c * c
               : q->kind == QKIND_DEPTHWISE ? taps * c
                                            : (uint64_t)q->in_c * c;
    case 1:
    case 2:
        return QBLOB_ANY;
    default:
        return n_rq;
    }
}

/* FORMAT.md §8: |bias| + sum|w| max|x + input_offset| < 2^31 for every output channel,
 * with the whole kernel as the taps (the largest fan-in of any position). */
static int qacc_bound_ok(const uint8_t *d, const uint32_t off[QN_BLOBS], uint32_t bias_size,
                         const sg_qlayer *q)
{
    /* |x + input_offset| <= max(128 - io, io + 127) for x in [-128, 127], io in [-127, 128] */
    const int32_t io = q->input_offset;
    const uint64_t xmax = (uint64_t)(128 - io > io + 127 ? 128 - io : io + 127);
    const uint32_t c_out = q->out_c;
    uint32_t o;
    if (q->kind == QKIND_POOL) {
        return 128u * (uint64_t)q->kernel_h * q->kernel_w < QACC_LIMIT;
    }
    for (o = 0; o < c_out; ++o) {
        uint64_t sum = 0;
        /* w[t][ci][o] (conv, FC: ci < filter_c) or w[t][c][m] (depthwise: o = c M + m):
         * the weights of output channel o are every out_c-th byte from o */
        const uint64_t rows =
            (uint64_t)q->kernel_h * q->kernel_w * (q->kind == QKIND_DEPTHWISE ? 1u : q->filter_c);
        uint64_t r;
        const int64_t bias = bias_size ? (int32_t)sg_rd32(d + off[1] + 4u * o) : 0;
        for (r = 0; r < rows; ++r) {
            const int8_t w = (int8_t)d[off[0] + o + r * c_out];
            sum += (uint64_t)(w < 0 ? -w : w);
        }
        if ((uint64_t)(bias < 0 ? -bias : bias) + sum * xmax >= QACC_LIMIT) {
            return 0;
        }
    }
    return 1;
}

static sg_status check_qlayer(loader *L, uint32_t si, uint64_t prev_n, uint64_t *arena,
                              uint64_t *n_max)
{
    sg_model *m = L->m;
    const uint64_t base = (uint64_t)sg_rd32(L->d + 52) + (uint64_t)si * LAYER_ENTRY_SIZE;
    const uint8_t *e = L->d + base;
    sg_qlayer *q = &m->qlayers[si];
    const int is_last = si == (uint32_t)m->n_stages - 1u;
    uint32_t off[QN_BLOBS];
    uint32_t size[QN_BLOBS];
    uint64_t n_rq = 0;
    uint32_t at;
    uint32_t b;
    uint32_t i;

    q->kind = sg_rd16(e + 0);
    q->flags = sg_rd16(e + 2);
    q->in_h = sg_rd16(e + 4);
    q->in_w = sg_rd16(e + 6);
    q->in_c = sg_rd16(e + 8);
    q->out_h = sg_rd16(e + 10);
    q->out_w = sg_rd16(e + 12);
    q->out_c = sg_rd16(e + 14);
    q->kernel_h = sg_rd16(e + 16);
    q->kernel_w = sg_rd16(e + 18);
    q->stride_h = sg_rd16(e + 20);
    q->stride_w = sg_rd16(e + 22);
    q->dilation_h = sg_rd16(e + 24);
    q->dilation_w = sg_rd16(e + 26);
    q->pad_top = sg_rd16(e + 28);
    q->pad_left = sg_rd16(e + 30);
    q->depth_multiplier = sg_rd16(e + 32);
    q->filter_c = sg_rd16(e + 34);
    q->input_offset = (int16_t)sg_rd16(e + 36);
    q->output_offset = (int16_t)sg_rd16(e + 38);
    q->act_min = (int16_t)sg_rd16(e + 40);
    q->act_max = (int16_t)sg_rd16(e + 42);

    if ((si == 0u) != (q->kind == QKIND_INPUT) ||
        (q->kind != QKIND_INPUT && (q->kind < QKIND_CONV || q->kind > QKIND_POOL))) {
        return fail(L, SG_ERR_LAYER, base + 0, "layers[].kind");
    }
    if ((q->flags & ~FLAG_OUTPUT) != 0u || ((q->flags & FLAG_OUTPUT) != 0u) != is_last) {
        return fail(L, SG_ERR_LAYER, base + 2, "layers[].flags");
    }
    at = check_qfields(m, q, prev_n);
    if (at != 0u) {
        return qfail_field(L, base, at);
    }
    if (sg_rd32(e + 44) != 0u) {
        return fail(L, SG_ERR_LAYER, base + 44, "layers[].reserved");
    }
    for (b = 0; b < QN_BLOBS; ++b) {
        const uint64_t o = sg_rd32(e + QBLOB_TABLE + 8u * b);
        const uint64_t sz = sg_rd32(e + QBLOB_TABLE + 8u * b + 4u);
        const uint64_t want = expected_qblob(b, q, n_rq);
        const uint64_t c = q->out_c;
        off[b] = (uint32_t)o;
        size[b] = (uint32_t)sz;
        if ((want != QBLOB_ANY && sz != want) ||
            (b == 1u && want == QBLOB_ANY && sz != 0u && sz != 4u * c) ||
            (b == 2u && want == QBLOB_ANY && sz != 4u && sz != 4u * c) ||
            (b == 0u && want == QBLOB_ANY && (sz < 2u || sz > QLUT_MAX))) {
            return fail(L, SG_ERR_BLOB, base + QBLOB_TABLE + 8u * b + 4u, qblob_size_names[b]);
        }
        if (b == 2u) {
            n_rq = sz / 4u;
        }
        if (sz == 0u) {
            if (o != 0u) {
                return fail(L, SG_ERR_BLOB, base + QBLOB_TABLE + 8u * b, qblob_off_names[b]);
            }
            continue;
        }
        if (o % ALIGN != 0u || o < HEADER_SIZE || o + sz > L->n || overlaps(L, o, o + sz)) {
            return fail(L, SG_ERR_BLOB, base + QBLOB_TABLE + 8u * b, qblob_off_names[b]);
        }
        L->reg[L->n_reg].lo = (uint32_t)o;
        L->reg[L->n_reg].hi = (uint32_t)(o + sz);
        L->n_reg++;
    }
    /* contents */
    for (i = 0; i < n_rq; ++i) {
        if ((int32_t)sg_rd32(L->d + off[2] + 4u * i) < 0) {
            return fail(L, SG_ERR_VALUE, (uint64_t)off[2] + 4u * i, "layers[].multiplier[]");
        }
    }
    for (i = 0; i < n_rq; ++i) {
        const int8_t sh = (int8_t)L->d[off[3] + i];
        if (sh < -31 || sh > 30) {
            return fail(L, SG_ERR_VALUE, (uint64_t)off[3] + i, "layers[].shift[]");
        }
    }
    if (q->kind == QKIND_INPUT && q->kernel_h >= 1u && (int8_t)L->d[off[0]] != q->output_offset) {
        return fail(L, SG_ERR_VALUE, off[0], "layers[].weights[]"); /* lut[0]: no events */
    }
    if (q->kind != QKIND_INPUT && !qacc_bound_ok(L->d, off, size[1], q)) {
        return fail(L, SG_ERR_VALUE, base, "layers[].kind"); /* as pysg/sgm.py */
    }
    q->n_in = (uint32_t)((uint64_t)q->in_h * q->in_w * q->in_c);
    q->n_out = (uint32_t)((uint64_t)q->out_h * q->out_w * q->out_c);
    q->n_rq = (uint32_t)n_rq;
    q->lut_len = q->kind == QKIND_INPUT ? size[0] : 0u;
    {
        const uint64_t n_out = (uint64_t)q->out_h * q->out_w * q->out_c;
        if (si == 0u) {
            const uint64_t cells = (uint64_t)q->depth_multiplier * q->out_h * q->out_w;
            *arena += (n_out + 3u) / 4u * 4u;
            if (q->kernel_h >= 1u) {
                *arena += (2u * ((uint64_t)q->kernel_w + 1u) * cells + 3u) / 4u * 4u +
                          4u * (uint64_t)q->kernel_h * cells;
            }
        } else {
            *arena += 4u * n_out + (n_out + 3u) / 4u * 4u;
        }
        if (n_out > *n_max) {
            *n_max = n_out;
        }
    }
    if (((uintptr_t)L->d & (ALIGN - 1u)) == 0u) {
        q->weights = size[0] != 0u ? (const int8_t *)(const void *)(L->d + off[0]) : NULL;
        q->bias = size[1] != 0u ? (const int32_t *)(const void *)(L->d + off[1]) : NULL;
        q->multiplier = size[2] != 0u ? (const int32_t *)(const void *)(L->d + off[2]) : NULL;
        q->shift = size[3] != 0u ? (const int8_t *)(const void *)(L->d + off[3]) : NULL;
    }
    return SG_OK;
}

/* Version 2 after the header and labels (FORMAT.md §10): entries, then n_classes and
 * arena_bytes (§9 formula). */
static sg_status load_qnet(loader *L)
{
    sg_model *m = L->m;
    uint64_t arena = 0;
    uint64_t n_max = 0;
    uint64_t prev_n = 0;
    uint32_t si;
    for (si = 0; si < m->n_stages; ++si) {
        const sg_status rc = check_qlayer(L, si, prev_n, &arena, &n_max);
        if (rc != SG_OK) {
            return rc;
        }
        prev_n = (uint64_t)m->qlayers[si].out_h * m->qlayers[si].out_w * m->qlayers[si].out_c;
    }
    if (prev_n != m->n_classes) {
        return fail(L, SG_ERR_HEADER, 44, "n_classes");
    }
    arena += 20u * n_max + (n_max + 3u) / 4u * 4u; /* scratch */
    if (arena != m->arena_bytes) {
        return fail(L, SG_ERR_ARENA, 20, "arena_bytes");
    }
    if (m->n_classes > SG_MAX_CLASSES) {
        return fail(L, SG_ERR_UNSUPPORTED, 44, "n_classes");
    }
    m->data = L->d;
    m->error_offset = 0;
    m->error_field = "";
    return SG_OK;
}

/* ---------------------------------------------------------------- public */

sg_status sg_model_load(sg_model *model, const void *data, size_t size)
{
    loader L;
    sg_status rc;
    uint16_t prev[3];
    uint64_t arena = 0;
    uint32_t si;
    size_t i;
    uint8_t *raw;

    if (model == NULL) {
        return SG_ERR_ARG;
    }
    raw = (uint8_t *)model;
    for (i = 0; i < sizeof *model; ++i) {
        raw[i] = 0;
    }
    model->labels = NULL;
    model->data = NULL;
    model->error_field = "";
    for (si = 0; si < SG_MAX_STAGES; ++si) {
        sg_stage *st = &model->stages[si];
        st->weights = NULL;
        st->bias = NULL;
        st->vweights = NULL;
        st->vshift = NULL;
        st->theta = NULL;
        st->alpha = NULL;
        st->delays = NULL;
        model->qlayers[si].weights = NULL;
        model->qlayers[si].bias = NULL;
        model->qlayers[si].multiplier = NULL;
        model->qlayers[si].shift = NULL;
    }
    if (data == NULL) {
        model->error_field = "data";
        return SG_ERR_ARG;
    }
    L.m = model;
    L.d = (const uint8_t *)data;
    L.n = (uint64_t)size;
    L.n_reg = 0;
    L.too_big = 0;
    rc = check_header(&L);
    if (rc == SG_OK) {
        rc = check_labels(&L);
    }
    if (rc == SG_OK && model->format_version == SG_FORMAT_VERSION_QNET) {
        return load_qnet(&L);
    }
    prev[0] = model->in_c;
    prev[1] = model->in_h;
    prev[2] = model->in_w;
    for (si = 0; rc == SG_OK && si < model->n_stages; ++si) {
        rc = check_layer(&L, si, prev, &arena);
        prev[0] = model->stages[si].out_c;
        prev[1] = model->stages[si].out_h;
        prev[2] = model->stages[si].out_w;
    }
    if (rc == SG_OK && model->stages[model->n_stages - 1u].n_out != model->n_classes) {
        rc = fail(&L, SG_ERR_HEADER, 44, "n_classes");
    }
    if (rc == SG_OK && arena != model->arena_bytes) {
        rc = fail(&L, SG_ERR_ARENA, 20, "arena_bytes");
    }
    if (rc == SG_OK && model->n_classes > SG_MAX_CLASSES) {
        rc = fail(&L, SG_ERR_UNSUPPORTED, 44, "n_classes");
    }
    if (rc == SG_OK && L.too_big) {
        rc = fail(&L, SG_ERR_UNSUPPORTED, 20, "arena_bytes");
    }
    if (rc != SG_OK) {
        return rc;
    }
    model->data = L.d;
    model->error_offset = 0;
    model->error_field = "";
    return SG_OK;
}

const char *sg_model_label(const sg_model *model, uint16_t index)
{
    if (model == NULL || model->labels == NULL || index >= model->n_classes) {
        return NULL;
    }
    return model->labels + (size_t)index * SG_LABEL_SIZE;
}

size_t sg_arena_size(const sg_model *model)
{
    return model == NULL ? 0u : (size_t)model->arena_bytes;
}

uint16_t sg_model_count_channels(const sg_model *model)
{
    if (model == NULL) {
        return 0u;
    }
    if (model->format_version == SG_FORMAT_VERSION_QNET) { /* input entry: slices, P */
        return model->qlayers[0].kernel_h >= 1u ? model->qlayers[0].depth_multiplier : 0u;
    }
    return model->in_c;
}
