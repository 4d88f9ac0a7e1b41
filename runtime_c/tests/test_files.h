/* SPDX-License-Identifier: MIT */
/* Test-only helpers the runtime's C tests share: the pass/fail counters and CHECK, whole
 * golden files read into the heap (exit 2 on failure), little-endian field access and the
 * re-signing of an edited .sgm (pysg.sgm.resign), so a test edits a field and reaches the
 * field's own check. Each test is one translation unit that includes this once. */
#ifndef SG_TEST_FILES_H
#define SG_TEST_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sg_runtime.h"

static int failures;
static int checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        ++checks;                                                                                  \
        if (!(cond)) {                                                                             \
            ++failures;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

static void *sg_test_read_alloc(const char *dir, const char *name, size_t *size)
{
    char path[1024];
    FILE *f;
    long n;
    void *p;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc((size_t)n + 8u);
    if (p == NULL || fread(p, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Recompute both CRCs of an .sgm of n bytes (payload, then header), so an edited field
 * reaches the field checks; shorter than a header: left as it is. */
static inline void resign_buf(uint8_t *b, size_t n)
{
    if (n < 64u) {
        return;
    }
    wr32(b + 16, sg_crc32(0, b + 64, n - 64u));
    wr32(b + 60, sg_crc32(0, b, 60));
}

#endif
