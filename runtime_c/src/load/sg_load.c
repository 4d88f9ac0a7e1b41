/* SPDX-License-Identifier: MIT */
/*
 * The .sgm loader, the part every kind shares: the header and the labels (docs/FORMAT.md
 * §5 steps 1-5), then the kind's own checks (sg_engine.load: the layer table, blobs,
 * contents), then the checks that close every file (§5 step 7). In place, in that order,
 * never reading a byte before checking that it lies inside the buffer. The first failing
 * check sets error_offset / error_field like pysg's SgmFormatError.
 */
#include "../core/sg_engine.h"
#include "sg_load.h"

sg_status sg_load_fail(sg_loader *L, sg_status st, uint64_t offset, const char *field)
{
    L->m->error_offset = (uint32_t)offset;
    L->m->error_field = field;
    return st;
}

int sg_load_claim(sg_loader *L, uint64_t lo, uint64_t hi)
{
    uint32_t r;
    for (r = 0; r < L->n_reg; ++r) {
        if (lo < L->reg[r].hi && L->reg[r].lo < hi) {
            return 0;
        }
    }
    if (L->n_reg == SG_LOAD_MAX_REGIONS) { /* unreachable: each kind asserts its blob count */
        return 0;
    }
    L->reg[L->n_reg].lo = (uint32_t)lo;
    L->reg[L->n_reg].hi = (uint32_t)hi;
    L->n_reg++;
    return 1;
}

/* ---------------------------------------------------------------- header */

/* The labels and the layer table: aligned, inside the payload, not overlapping. */
static sg_status check_tables(sg_loader *L)
{
    static const uint32_t at[2] = {SG_HDR_LABELS_OFFSET, SG_HDR_LAYERS_OFFSET};
    static const char *const name[2] = {"labels_offset", "layers_offset"};
    const sg_model *m = L->m;
    uint32_t i;
    for (i = 0; i < 2u; ++i) {
        const uint64_t off = sg_rd32(L->d + at[i]);
        const uint64_t size = i == 0u ? (uint64_t)m->n_classes * SG_FMT_LABEL_SIZE
                                      : (uint64_t)m->n_stages * SG_FMT_LAYER_ENTRY_SIZE;
        if (off % SG_FMT_ALIGN != 0u) {
            return sg_load_fail(L, SG_ERR_HEADER, at[i], name[i]);
        }
        if (off < SG_FMT_HEADER_SIZE || off + size > L->n) {
            return sg_load_fail(L, SG_ERR_HEADER, at[i], name[i]);
        }
        if (!sg_load_claim(L, off, off + size)) {
            return sg_load_fail(L, SG_ERR_HEADER, at[i], name[i]);
        }
    }
    return SG_OK;
}

static sg_status check_header(sg_loader *L)
{
    const uint8_t *d = L->d;
    sg_model *m = L->m;
    uint32_t ds;
    uint32_t i;
    sg_status rc;

    if (L->n < SG_FMT_HEADER_SIZE) {
        return sg_load_fail(L, SG_ERR_TRUNCATED, L->n, "header");
    }
    for (i = 0; i < 4u; ++i) {
        if (d[SG_HDR_MAGIC + i] != (uint8_t)SG_FMT_MAGIC[i]) {
            return sg_load_fail(L, SG_ERR_MAGIC, SG_HDR_MAGIC, "magic");
        }
    }
    L->engine = sg_engine_find(sg_rd32(d + SG_HDR_FORMAT_VERSION));
    if (L->engine == NULL) {
        return sg_load_fail(L, SG_ERR_VERSION, SG_HDR_FORMAT_VERSION, "format_version");
    }
    m->format_version = L->engine->format_version;
    if (sg_rd32(d + SG_HDR_HEADER_SIZE) != SG_FMT_HEADER_SIZE) {
        return sg_load_fail(L, SG_ERR_VERSION, SG_HDR_HEADER_SIZE, "header_size");
    }
    if ((uint64_t)sg_rd32(d + SG_HDR_FILE_SIZE) != L->n) {
        return sg_load_fail(L, SG_ERR_TRUNCATED, SG_HDR_FILE_SIZE, "file_size");
    }
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION /* lets a fuzzer past the CRCs */
    if (sg_rd32(d + SG_HDR_HEADER_CRC32) != sg_crc32(0, d, SG_HDR_HEADER_CRC32)) {
        return sg_load_fail(L, SG_ERR_CRC, SG_HDR_HEADER_CRC32, "header_crc32");
    }
    if (sg_rd32(d + SG_HDR_PAYLOAD_CRC32) !=
        sg_crc32(0, d + SG_FMT_HEADER_SIZE, (size_t)(L->n - SG_FMT_HEADER_SIZE))) {
        return sg_load_fail(L, SG_ERR_CRC, SG_HDR_PAYLOAD_CRC32, "payload_crc32");
    }
#endif
    m->size = (uint32_t)L->n;
    m->arena_bytes = sg_rd32(d + SG_HDR_ARENA_BYTES);
    m->dt_us = sg_rd32(d + SG_HDR_DT_US);
    m->n_stages = sg_rd16(d + SG_HDR_N_STAGES);
    m->in_c = sg_rd16(d + SG_HDR_IN_C);
    m->in_h = sg_rd16(d + SG_HDR_IN_H);
    m->in_w = sg_rd16(d + SG_HDR_IN_W);
    m->sensor_w = sg_rd16(d + SG_HDR_SENSOR_W);
    m->sensor_h = sg_rd16(d + SG_HDR_SENSOR_H);
    m->downsample = sg_rd16(d + SG_HDR_DOWNSAMPLE);
    m->n_classes = sg_rd16(d + SG_HDR_N_CLASSES);
    if (m->dt_us == 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_DT_US, "dt_us");
    }
    rc = L->engine->check_header(L); /* n_stages, n_buckets, in_c */
    if (rc != SG_OK) {
        return rc;
    }
    if (m->in_h == 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_IN_H, "in_h");
    }
    if (m->in_w == 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_IN_W, "in_w");
    }
    if (m->sensor_w == 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_SENSOR_W, "sensor_w");
    }
    if (m->sensor_h == 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_SENSOR_H, "sensor_h");
    }
    ds = m->downsample;
    if (ds == 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_DOWNSAMPLE, "downsample");
    }
    if (m->sensor_w % ds != 0u || m->sensor_h % ds != 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_DOWNSAMPLE, "downsample");
    }
    if (m->in_h != m->sensor_h / ds) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_IN_H, "in_h");
    }
    if (m->in_w != m->sensor_w / ds) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_IN_W, "in_w");
    }
    if (m->n_classes == 0u) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_N_CLASSES, "n_classes");
    }
    if (sg_rd16(d + SG_HDR_LABEL_SIZE) != SG_FMT_LABEL_SIZE) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_LABEL_SIZE, "label_size");
    }
    if (sg_rd32(d + SG_HDR_LAYER_ENTRY_SIZE) != SG_FMT_LAYER_ENTRY_SIZE) {
        return sg_load_fail(L, SG_ERR_HEADER, SG_HDR_LAYER_ENTRY_SIZE, "layer_entry_size");
    }
    L->reg[0].lo = 0;
    L->reg[0].hi = SG_FMT_HEADER_SIZE;
    L->n_reg = 1;
    return check_tables(L);
}

static sg_status check_labels(sg_loader *L)
{
    const uint32_t base = sg_rd32(L->d + SG_HDR_LABELS_OFFSET);
    uint32_t i;
    for (i = 0; i < L->m->n_classes; ++i) {
        const uint32_t at = base + i * SG_FMT_LABEL_SIZE;
        const uint8_t *s = L->d + at;
        uint32_t len = 0;
        uint32_t k;
        while (len < SG_FMT_LABEL_SIZE && s[len] != 0u) {
            ++len;
        }
        if (len == 0u) {
            return sg_load_fail(L, SG_ERR_LABEL, at, "labels[]");
        }
        if (len == SG_FMT_LABEL_SIZE) {
            return sg_load_fail(L, SG_ERR_LABEL, at, "labels[]");
        }
        for (k = len; k < SG_FMT_LABEL_SIZE; ++k) {
            if (s[k] != 0u) {
                return sg_load_fail(L, SG_ERR_LABEL, at, "labels[]");
            }
        }
        if (!sg_utf8_valid(s, len)) {
            return sg_load_fail(L, SG_ERR_LABEL, at, "labels[]");
        }
    }
    L->m->labels = (const char *)(L->d + base);
    return SG_OK;
}

/* ---------------------------------------------------------------- public */

sg_status sg_model_load(sg_model *model, const void *data, size_t size)
{
    sg_loader L;
    sg_status rc;
    uint64_t arena = 0;
    uint64_t n_out = 0;
    size_t i;
    uint8_t *raw;

    if (model == NULL) {
        return SG_ERR_ARG;
    }
    raw = (uint8_t *)model; /* every field 0; the kinds set each view pointer they fill */
    for (i = 0; i < sizeof *model; ++i) {
        raw[i] = 0;
    }
    model->data = NULL;
    model->labels = NULL;
    model->engine = NULL;
    model->error_field = "";
    if (data == NULL) {
        model->error_field = "data";
        return SG_ERR_ARG;
    }
    L.m = model;
    L.d = (const uint8_t *)data;
    L.n = (uint64_t)size;
    L.engine = NULL;
    L.n_reg = 0;
    L.too_big = 0;
    rc = check_header(&L);
    if (rc == SG_OK) {
        rc = check_labels(&L);
    }
    if (rc == SG_OK) {
        rc = L.engine->load(&L, &arena, &n_out);
    }
    /* FORMAT.md §5 step 7, §10: what closes every file */
    if (rc == SG_OK && n_out != model->n_classes) {
        rc = sg_load_fail(&L, SG_ERR_HEADER, SG_HDR_N_CLASSES, "n_classes");
    }
    if (rc == SG_OK && arena != model->arena_bytes) {
        rc = sg_load_fail(&L, SG_ERR_ARENA, SG_HDR_ARENA_BYTES, "arena_bytes");
    }
    if (rc == SG_OK && model->n_classes > SG_MAX_CLASSES) {
        rc = sg_load_fail(&L, SG_ERR_UNSUPPORTED, SG_HDR_N_CLASSES, "n_classes");
    }
    if (rc == SG_OK && L.too_big) {
        rc = sg_load_fail(&L, SG_ERR_UNSUPPORTED, SG_HDR_ARENA_BYTES, "arena_bytes");
    }
    if (rc != SG_OK) {
        return rc;
    }
    model->data = L.d;
    model->engine = L.engine;
    model->error_offset = 0;
    model->error_field = "";
    return SG_OK;
}
