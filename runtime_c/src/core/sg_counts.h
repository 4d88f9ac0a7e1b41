/* SPDX-License-Identifier: MIT */
/**
 * @file sg_counts.h
 * @brief The open step's event-count frame of the kinds that take event counts (qnet,
 *        snn): a frame added to it, and sg_feed's runs of events binned into it. Private.
 *
 * Static inline so each engine's loop keeps its counters in registers (the hot path of
 * sg_feed); one definition so the kinds cannot bin an event two ways.
 */
#ifndef SG_COUNTS_H
#define SG_COUNTS_H

#include "sg_internal.h"

/** Add @p cells counts to @p row, saturating at SG_FMT_COUNT_MAX; returns their sum
 *  (the frame's events, for stats.events_in). */
static inline uint64_t sg_counts_add(uint16_t *row, const uint16_t *counts, size_t cells)
{
    uint64_t total = 0;
    size_t c;
    for (c = 0; c < cells; ++c) {
        const uint32_t v = (uint32_t)row[c] + counts[c];
        total += counts[c];
        row[c] = (uint16_t)(v > SG_FMT_COUNT_MAX ? SG_FMT_COUNT_MAX : v);
    }
    return total;
}

/** The events from @p e on that fall in the open step [t_lo, t_lo + dt) each add 1
 *  (saturating) to their cell of the @p in_h x @p in_w frame (channel = polarity when
 *  @p two_ch; row, column = y, x / downsample); events off the model's sensor (or with
 *  a polarity above 1) are counted in @p dropped, the others in @p accepted. Returns the
 *  index of the first event past the step. */
static inline size_t sg_counts_feed(uint16_t *row, const sg_model *m, uint32_t in_h, uint32_t in_w,
                                    int two_ch, const sg_event *events, size_t e, size_t n,
                                    int64_t t_lo, size_t *accepted, size_t *dropped)
{
    const uint64_t dt = m->dt_us;
    const uint32_t ds = m->downsample;
    size_t taken = 0; /* counted here, not through the pointers: they stay in registers */
    size_t out = 0;
    for (; e < n; ++e) {
        const sg_event *ev = &events[e];
        uint32_t cell;
        if (ev->t_us < t_lo || (uint64_t)ev->t_us - (uint64_t)t_lo >= dt) {
            break; /* not in the open step */
        }
        if (ev->x >= m->sensor_w || ev->y >= m->sensor_h || ev->p > 1u) {
            ++out;
            continue;
        }
        cell = ((two_ch ? (uint32_t)ev->p : 0u) * in_h + (uint32_t)ev->y / ds) * in_w +
               (uint32_t)ev->x / ds;
        if (row[cell] != SG_FMT_COUNT_MAX) {
            row[cell]++;
        }
        ++taken;
    }
    *accepted += taken;
    *dropped += out;
    return e;
}

#endif /* SG_COUNTS_H */
