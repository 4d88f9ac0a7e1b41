/* SPDX-License-Identifier: MIT */
/**
 * @file sg_load.h
 * @brief Private: the state of one sg_model_load call, shared by the common checks
 *        (src/load/sg_load.c: header, labels, the end) and each kind's loader (the layer
 *        table, blobs and contents, behind sg_engine.load).
 *
 * Every check names the first bad field like pysg's SgmFormatError: the status, the byte
 * offset and the field name (layer and label fields as "layers[].x" / "labels[]": the
 * index follows from the offset).
 */
#ifndef SG_LOAD_H
#define SG_LOAD_H

#include "../core/sg_internal.h"

/** Blobs per layer-table entry a kind may claim (each kind asserts its count fits). */
#define SG_LOAD_MAX_BLOBS 7u
/** Regions of a file: the header, the labels, the layer table and every blob. */
#define SG_LOAD_MAX_REGIONS (3u + SG_FMT_MAX_STAGES * SG_LOAD_MAX_BLOBS)

/** [lo, hi) inside the buffer; file_size (u32) equals the length, so 32 bits suffice. */
typedef struct sg_region {
    uint32_t lo, hi;
} sg_region;

/** One load in progress. */
typedef struct sg_loader {
    sg_model *m;             /**< being filled */
    const uint8_t *d;        /**< the file */
    uint64_t n;              /**< its length */
    const sg_engine *engine; /**< the kind named by format_version */
    sg_region reg[SG_LOAD_MAX_REGIONS];
    uint32_t n_reg;
    int too_big; /**< a valid file whose sizes exceed 32-bit indexing (refused at the end) */
} sg_loader;

/** Record the failing check in the model (error_offset, error_field); returns @p st. */
sg_status sg_load_fail(sg_loader *L, sg_status st, uint64_t offset, const char *field);

/** Claim [lo, hi) for a table or blob: 0 if it overlaps a region claimed before (nothing
 *  recorded), else 1. The caller has checked it lies inside the file. */
int sg_load_claim(sg_loader *L, uint64_t lo, uint64_t hi);

/** Strict UTF-8 as Python's decoder: no overlongs, no surrogates, <= U+10FFFF. */
int sg_utf8_valid(const uint8_t *s, uint32_t n);

#endif /* SG_LOAD_H */
