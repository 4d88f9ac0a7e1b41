/* SPDX-License-Identifier: MIT */
/**
 * @file sg_engine.h
 * @brief Private: the operations of one model kind, and the table of kinds.
 *
 * The public functions do the work every kind shares once (argument checks, the header
 * and labels, the arena and its zeroing, the time base: origin, whole steps in order,
 * SG_ERR_TIME; the scores and the step count) and call the model's engine for the rest.
 * A kind lives in src/engines/<kind>/ and is registered by one line in
 * src/core/sg_engines.c; its layer views and state are members of sg_net and sg_state
 * (include/sg_runtime.h).
 *
 * A step of any kind: open_step, then input (feed, once per run of events inside the
 * step, and/or add_counts), then close_step; or step_tensor alone.
 */
#ifndef SG_ENGINE_H
#define SG_ENGINE_H

#include "../load/sg_load.h"
#include "sg_internal.h"

struct sg_engine {
    uint16_t format_version; /**< the .sgm version this kind reads */

    /* ------------------------------------------------ loading (L->m being filled) */
    /** The header fields whose rules differ by kind, in table order: n_stages, n_buckets,
     *  in_c (FORMAT.md §5 step 4, §10). The common fields are read into L->m already. */
    sg_status (*check_header)(sg_loader *L);
    /** The layer table, blobs and contents, in file order; fills L->m->net. Returns the
     *  arena formula's bytes and the outputs of the last layer (checked against
     *  arena_bytes and n_classes by the caller). */
    sg_status (*load)(sg_loader *L, uint64_t *arena_bytes, uint64_t *n_out);

    /* ------------------------------------------------ queries of a loaded model */
    uint16_t (*count_channels)(const sg_model *m); /**< sg_model_count_channels; 0: no events */
    uint32_t (*window)(const sg_model *m);         /**< sg_model_window (>= 1) */
    /** Layer count; fills @p info for @p index when it is below that count. */
    uint16_t (*layers)(const sg_model *m, uint16_t index, sg_layer_info *info);

    /* ------------------------------------------------ running */
    /** Point rt->state into rt->arena (every pointer set); returns the bytes used. */
    size_t (*layout)(sg_runtime *rt);
    /** The state of no input over the zeroed arena; NULL if zero is that state. */
    void (*reset)(sg_runtime *rt);
    /** Begin step rt->step (before any input of it). */
    void (*open_step)(sg_runtime *rt);
    /**
     * Events @p e .. while they fall in the open step [@p t_lo, t_lo + dt): the kind's input
     * mapping (sensor -> model input; dropped events counted). Returns the index of the
     * first event that does not (@p n if none). Called once per run of events, never per
     * event; holds nothing back when it returns (all of the run is in the state).
     */
    size_t (*feed)(sg_runtime *rt, const sg_event *events, size_t e, size_t n, int64_t t_lo,
                   size_t *accepted, size_t *dropped);
    /** Add a frame of sg_model_count_channels x in_h x in_w counts to the open step
     *  (stats.events_in / events_dropped counted). */
    void (*add_counts)(sg_runtime *rt, const uint16_t *counts);
    /** Close the open step: every layer, rt->logits (n_classes), the kind's statistics. */
    void (*close_step)(sg_runtime *rt);
    /** A whole step from the int8 input tensor (models without count channels); NULL
     *  for kinds without tensor input (SG_ERR_UNSUPPORTED). */
    void (*step_tensor)(sg_runtime *rt, const int8_t *x);
};

/** The kind that reads .sgm version @p format_version, or NULL. */
const sg_engine *sg_engine_find(uint32_t format_version);

#endif /* SG_ENGINE_H */
