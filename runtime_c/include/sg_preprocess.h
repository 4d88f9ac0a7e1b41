/* SPDX-License-Identifier: MIT */
/**
 * @file sg_preprocess.h
 * @brief Event filters of pysg.preprocess in C: crop, downsample, refractory and
 *        background-activity filters, bit-exact with the numpy reference.
 *
 * C99, no heap. Every filter works in place on an array of sg_event in stream order:
 * kept events are compacted to the front (their order preserved) and their count is
 * written to @c *n_kept. The stateful filters (refractory, background activity) keep
 * one int64 timestamp per pixel in caller memory of sg_refractory_state_size() /
 * sg_baf_state_size() bytes; the state persists across calls, so filtering a stream in
 * batches gives exactly the events of one call on the whole stream. Typical use:
 *
 *     static int64_t mem[128 * 128];        // sg_refractory_state_size(128, 128) bytes
 *     sg_refractory rf;
 *     sg_refractory_init(&rf, 1000, 128, 128, mem, sizeof mem);
 *     size_t kept;
 *     sg_refractory_filter(&rf, events, n, &kept);   // events[0..kept) survive
 *
 * "No event yet" at a pixel is stored as SG_PIXEL_NONE (INT64_MIN), as in
 * pysg.preprocess.PixelTimeMap. Time differences wrap modulo 2^64 like numpy int64.
 * The stateful filters need every event inside their width x height map; a batch with
 * an event outside it is refused (SG_ERR_ARG) before anything is changed.
 */
#ifndef SG_PREPROCESS_H
#define SG_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "sg_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Per-pixel timestamp meaning "no event yet" (INT64_MIN). */
#define SG_PIXEL_NONE INT64_MIN

/**
 * Crop (pysg.preprocess.Crop): keep events with x0 <= x < x0 + w and y0 <= y < y0 + h,
 * moved to the crop's origin (x -= x0, y -= y0); t and p unchanged.
 * @param[in]     x0, y0   crop origin (any value; beyond 65535 nothing is kept)
 * @param[in]     w, h     crop size, >= 1
 * @param[in,out] events   n events; the kept ones are compacted to the front
 * @param[in]     n        number of events (events may be NULL when n is 0)
 * @param[out]    n_kept   number of events kept
 * @return SG_OK, or SG_ERR_ARG (NULL pointer, w or h of 0).
 */
sg_status sg_crop(uint32_t x0, uint32_t y0, uint32_t w, uint32_t h, sg_event *events, size_t n,
                  size_t *n_kept);

/**
 * Downsample (pysg.preprocess.Downsample): x = x / factor, y = y / factor (floor);
 * every event is kept, t and p unchanged.
 * @param[in]     factor   >= 1
 * @param[in,out] events   n events, modified in place
 * @param[in]     n        number of events (events may be NULL when n is 0)
 * @return SG_OK, or SG_ERR_ARG (NULL pointer, factor 0).
 */
sg_status sg_downsample(uint32_t factor, sg_event *events, size_t n);

/** Refractory filter state; the caller owns the struct and the map memory. Read-only. */
typedef struct sg_refractory {
    int64_t *last;          /**< [height][width] time of each pixel's last KEPT event */
    uint16_t width, height; /**< map size: every event needs x < width, y < height */
    int64_t refractory_us;  /**< >= 0 */
} sg_refractory;

/** Background-activity filter state; the caller owns the struct and the map memory. */
typedef struct sg_baf {
    int64_t *last;          /**< [height][width] time of each pixel's last event, kept or not */
    uint16_t width, height; /**< map size: every event needs x < width, y < height */
    int64_t window_us;      /**< >= 0 */
    uint16_t neighbourhood; /**< r >= 1: neighbours are |dx|, |dy| <= r, excluding the pixel */
} sg_baf;

/**
 * Bytes of state memory a refractory filter over a @p width x @p height map needs
 * (8 per pixel); 0 if width or height is 0 or the size does not fit in size_t.
 */
size_t sg_refractory_state_size(uint16_t width, uint16_t height);

/**
 * Bind a refractory filter to its state memory and reset it (every pixel: no event).
 * @param[out] f              the filter
 * @param[in]  refractory_us  >= 0 (0 keeps everything)
 * @param[in]  width, height  map size, >= 1
 * @param[in]  state          caller memory, 8-byte aligned, sg_refractory_state_size() bytes
 * @param[in]  state_bytes    bytes available at @p state
 * @return SG_OK; SG_ERR_ARG on NULL, misalignment or a bad parameter; SG_ERR_ARENA if
 *         @p state_bytes is too small.
 */
sg_status sg_refractory_init(sg_refractory *f, int64_t refractory_us, uint16_t width,
                             uint16_t height, void *state, size_t state_bytes);

/** Forget every pixel's last event (start of a new stream). */
sg_status sg_refractory_reset(sg_refractory *f);

/**
 * Refractory filter (pysg.preprocess.RefractoryFilter), events in stream order, polarity
 * ignored, L = last kept time of the event's pixel:
 *     keep e iff L is none or e.t - L >= refractory_us;  if kept, L = e.t.
 * Dropped events do not update L; a timestamp earlier than L (unsorted input) gives a
 * negative difference and is dropped (unless the difference wraps: |t - L| >= 2^63).
 * @param[in,out] f        the filter; its map is updated
 * @param[in,out] events   n events; the kept ones are compacted to the front
 * @param[in]     n        number of events (events may be NULL when n is 0)
 * @param[out]    n_kept   number of events kept
 * @return SG_OK, or SG_ERR_ARG (NULL pointer, or an event outside the map: then nothing
 *         is changed and *n_kept is 0).
 */
sg_status sg_refractory_filter(sg_refractory *f, sg_event *events, size_t n, size_t *n_kept);

/** Bytes of state memory a background-activity filter over a width x height map needs. */
size_t sg_baf_state_size(uint16_t width, uint16_t height);

/**
 * Bind a background-activity filter to its state memory and reset it.
 * @param[out] f              the filter
 * @param[in]  window_us      >= 0
 * @param[in]  neighbourhood  r >= 1 (1: the 8 pixels around)
 * @param[in]  width, height  map size, >= 1
 * @param[in]  state          caller memory, 8-byte aligned, sg_baf_state_size() bytes
 * @param[in]  state_bytes    bytes available at @p state
 * @return SG_OK; SG_ERR_ARG on NULL, misalignment or a bad parameter; SG_ERR_ARENA if
 *         @p state_bytes is too small.
 */
sg_status sg_baf_init(sg_baf *f, int64_t window_us, uint16_t neighbourhood, uint16_t width,
                      uint16_t height, void *state, size_t state_bytes);

/** Forget every pixel's last event (start of a new stream). */
sg_status sg_baf_reset(sg_baf *f);

/**
 * Background-activity filter (pysg.preprocess.BackgroundActivityFilter), events in stream
 * order, polarity ignored, T = last time of a pixel (kept or not), r = neighbourhood:
 *     keep e iff some neighbour (x', y') != (e.x, e.y), |x' - e.x| <= r, |y' - e.y| <= r,
 *                has T[x', y'] not none and 0 <= e.t - T[x', y'] <= window_us;
 *     then (always) T[e.x, e.y] = e.t.
 * Neighbours outside the map have no event.
 * @param[in,out] f        the filter; its map is updated by every event
 * @param[in,out] events   n events; the kept ones are compacted to the front
 * @param[in]     n        number of events (events may be NULL when n is 0)
 * @param[out]    n_kept   number of events kept
 * @return SG_OK, or SG_ERR_ARG (NULL pointer, or an event outside the map: then nothing
 *         is changed and *n_kept is 0).
 */
sg_status sg_baf_filter(sg_baf *f, sg_event *events, size_t n, size_t *n_kept);

#ifdef __cplusplus
}
#endif
#endif /* SG_PREPROCESS_H */
