/* SPDX-License-Identifier: MIT */
/* Event filters (pysg/preprocess.py in C): crop, downsample, refractory, background activity. */
#include "sg_preprocess.h"

/* a - b modulo 2^64, as numpy int64 arithmetic (no signed-overflow UB). */
static int64_t sg_wrap_sub(int64_t a, int64_t b)
{
    uint64_t d = (uint64_t)a - (uint64_t)b;
    return d <= (uint64_t)INT64_MAX ? (int64_t)d : -(int64_t)(UINT64_MAX - d) - 1;
}

static size_t sg_map_bytes(uint16_t width, uint16_t height)
{
    uint64_t bytes = (uint64_t)width * height * sizeof(int64_t);
    if (width == 0 || height == 0 || bytes > (uint64_t)SIZE_MAX) {
        return 0;
    }
    return (size_t)bytes;
}

static void sg_map_clear(int64_t *map, uint16_t width, uint16_t height)
{
    size_t i, n = (size_t)width * height;
    for (i = 0; i < n; i++) {
        map[i] = SG_PIXEL_NONE;
    }
}

static sg_status sg_map_check(void *state, size_t state_bytes, uint16_t width, uint16_t height)
{
    size_t need = sg_map_bytes(width, height);
    if (state == NULL || need == 0 || ((uintptr_t)state % sizeof(int64_t)) != 0) {
        return SG_ERR_ARG;
    }
    return state_bytes < need ? SG_ERR_ARENA : SG_OK;
}

/* SG_OK if every event lies inside the width x height map. */
static sg_status sg_events_inside(const sg_event *events, size_t n, uint16_t width, uint16_t height)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (events[i].x >= width || events[i].y >= height) {
            return SG_ERR_ARG;
        }
    }
    return SG_OK;
}

sg_status sg_crop(uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, sg_event *events, size_t n,
                  size_t *n_kept)
{
    size_t i, k = 0;
    if (n_kept == NULL || (events == NULL && n > 0) || w == 0 || h == 0) {
        return SG_ERR_ARG;
    }
    for (i = 0; i < n; i++) {
        sg_event e = events[i];
        if (e.x >= x0 && e.y >= y0 && (uint64_t)e.x < (uint64_t)x0 + w &&
            (uint64_t)e.y < (uint64_t)y0 + h) {
            e.x = (uint16_t)(e.x - x0);
            e.y = (uint16_t)(e.y - y0);
            events[k++] = e;
        }
    }
    *n_kept = k;
    return SG_OK;
}

sg_status sg_downsample(uint32_t factor, sg_event *events, size_t n)
{
    size_t i;
    if ((events == NULL && n > 0) || factor == 0) {
        return SG_ERR_ARG;
    }
    if (factor == 1) {
        return SG_OK;
    }
    for (i = 0; i < n; i++) {
        events[i].x = (uint16_t)(events[i].x / factor);
        events[i].y = (uint16_t)(events[i].y / factor);
    }
    return SG_OK;
}

/* ------------------------------------------------------------------ refractory */

size_t sg_refractory_state_size(uint16_t width, uint16_t height)
{
    return sg_map_bytes(width, height);
}

sg_status sg_refractory_init(sg_refractory *f, int64_t refractory_us, uint16_t width,
                             uint16_t height, void *state, size_t state_bytes)
{
    sg_status st;
    if (f == NULL || refractory_us < 0) {
        return SG_ERR_ARG;
    }
    st = sg_map_check(state, state_bytes, width, height);
    if (st != SG_OK) {
        return st;
    }
    f->last = (int64_t *)state;
    f->width = width;
    f->height = height;
    f->refractory_us = refractory_us;
    sg_map_clear(f->last, width, height);
    return SG_OK;
}

sg_status sg_refractory_reset(sg_refractory *f)
{
    if (f == NULL || f->last == NULL) {
        return SG_ERR_ARG;
    }
    sg_map_clear(f->last, f->width, f->height);
    return SG_OK;
}

sg_status sg_refractory_filter(sg_refractory *f, sg_event *events, size_t n, size_t *n_kept)
{
    size_t i, k = 0;
    if (n_kept == NULL) {
        return SG_ERR_ARG;
    }
    *n_kept = 0;
    if (f == NULL || f->last == NULL || (events == NULL && n > 0)) {
        return SG_ERR_ARG;
    }
    if (sg_events_inside(events, n, f->width, f->height) != SG_OK) {
        return SG_ERR_ARG;
    }
    for (i = 0; i < n; i++) {
        sg_event e = events[i];
        int64_t *l = &f->last[(size_t)e.y * f->width + e.x];
        if (*l == SG_PIXEL_NONE || sg_wrap_sub(e.t_us, *l) >= f->refractory_us) {
            *l = e.t_us;
            events[k++] = e;
        }
    }
    *n_kept = k;
    return SG_OK;
}

/* ------------------------------------------------------------------ background activity */

size_t sg_baf_state_size(uint16_t width, uint16_t height)
{
    return sg_map_bytes(width, height);
}

sg_status sg_baf_init(sg_baf *f, int64_t window_us, uint16_t neighbourhood, uint16_t width,
                      uint16_t height, void *state, size_t state_bytes)
{
    sg_status st;
    if (f == NULL || window_us < 0 || neighbourhood == 0) {
        return SG_ERR_ARG;
    }
    st = sg_map_check(state, state_bytes, width, height);
    if (st != SG_OK) {
        return st;
    }
    f->last = (int64_t *)state;
    f->width = width;
    f->height = height;
    f->window_us = window_us;
    f->neighbourhood = neighbourhood;
    sg_map_clear(f->last, width, height);
    return SG_OK;
}

sg_status sg_baf_reset(sg_baf *f)
{
    if (f == NULL || f->last == NULL) {
        return SG_ERR_ARG;
    }
    sg_map_clear(f->last, f->width, f->height);
    return SG_OK;
}

/* 1 if a neighbour of (x, y) (not the pixel itself) had an event in [t - window, t]. */
static int sg_baf_support(const sg_baf *f, uint16_t x, uint16_t y, int64_t t)
{
    uint32_t r = f->neighbourhood;
    uint32_t xlo = x > r ? x - r : 0u, ylo = y > r ? y - r : 0u;
    uint32_t xhi = (uint32_t)x + r, yhi = (uint32_t)y + r;
    uint32_t xx, yy;
    if (xhi >= f->width) {
        xhi = f->width - 1u;
    }
    if (yhi >= f->height) {
        yhi = f->height - 1u;
    }
    for (yy = ylo; yy <= yhi; yy++) {
        const int64_t *row = &f->last[(size_t)yy * f->width];
        for (xx = xlo; xx <= xhi; xx++) {
            int64_t tn = row[xx], d;
            if (tn == SG_PIXEL_NONE || (xx == x && yy == y)) {
                continue;
            }
            d = sg_wrap_sub(t, tn);
            if (d >= 0 && d <= f->window_us) {
                return 1;
            }
        }
    }
    return 0;
}

sg_status sg_baf_filter(sg_baf *f, sg_event *events, size_t n, size_t *n_kept)
{
    size_t i, k = 0;
    if (n_kept == NULL) {
        return SG_ERR_ARG;
    }
    *n_kept = 0;
    if (f == NULL || f->last == NULL || (events == NULL && n > 0)) {
        return SG_ERR_ARG;
    }
    if (sg_events_inside(events, n, f->width, f->height) != SG_OK) {
        return SG_ERR_ARG;
    }
    for (i = 0; i < n; i++) {
        sg_event e = events[i];
        int keep = sg_baf_support(f, e.x, e.y, e.t_us);
        f->last[(size_t)e.y * f->width + e.x] = e.t_us;
        if (keep) {
            events[k++] = e;
        }
    }
    *n_kept = k;
    return SG_OK;
}
