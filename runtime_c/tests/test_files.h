/* SPDX-License-Identifier: MIT */
/* Test-only: read a whole golden file of a directory into the heap (exit 2 on failure). */
#ifndef SG_TEST_FILES_H
#define SG_TEST_FILES_H

#include <stdio.h>
#include <stdlib.h>

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

#endif
