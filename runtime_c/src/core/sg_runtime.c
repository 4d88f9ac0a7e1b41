/* SPDX-License-Identifier: MIT */
/*
 * Runtime state over one caller arena: init (the kind lays out its state), reset,
 * readouts (logits, scores, prediction, step index) and statistics. The time base and
 * the steps: sg_time.c.
 */
#include "sg_engine.h"

sg_status sg_runtime_init(sg_runtime *rt, const sg_model *model, void *arena, size_t arena_size)
{
    if (rt == NULL || model == NULL || arena == NULL || model->data == NULL ||
        model->engine == NULL) {
        return SG_ERR_ARG;
    }
    if (((uintptr_t)arena & 3u) != 0u || ((uintptr_t)model->data & 7u) != 0u) {
        return SG_ERR_ARG;
    }
    if (arena_size < (size_t)model->arena_bytes) {
        return SG_ERR_ARENA;
    }
    rt->model = model;
    rt->arena = (uint8_t *)arena;
    rt->arena_size = arena_size;
    rt->score_start = 0;
    rt->first_scored = model->engine->window(model) - 1u;
    rt->arena_used = model->engine->layout(rt);
    return sg_runtime_reset(rt);
}

sg_status sg_runtime_reset(sg_runtime *rt)
{
    size_t i;
    if (rt == NULL || rt->model == NULL) {
        return SG_ERR_ARG;
    }
    for (i = 0; i < rt->arena_used; ++i) {
        rt->arena[i] = 0;
    }
    for (i = 0; i < SG_MAX_CLASSES; ++i) {
        rt->logits[i] = 0;
        rt->score[i] = 0;
    }
    rt->t0_us = 0;
    rt->step = 0;
    rt->has_origin = 0;
    rt->step_open = 0;
    rt->stats.steps = 0;
    rt->stats.events_in = 0;
    rt->stats.events_dropped = 0;
    rt->stats.synops = 0;
    for (i = 0; i < SG_MAX_STAGES; ++i) {
        rt->stats.spikes[i] = 0;
    }
    if (rt->model->engine->reset != NULL) {
        rt->model->engine->reset(rt);
    }
    return SG_OK;
}

size_t sg_arena_used(const sg_runtime *rt)
{
    return rt == NULL ? 0u : rt->arena_used;
}

/* ---------------------------------------------------------------- readouts */

const int32_t *sg_logits(const sg_runtime *rt)
{
    return rt == NULL ? NULL : rt->logits;
}

const int64_t *sg_scores(const sg_runtime *rt)
{
    return rt == NULL ? NULL : rt->score;
}

uint32_t sg_step_index(const sg_runtime *rt)
{
    return rt == NULL ? 0u : rt->step;
}

int sg_prediction(const sg_runtime *rt)
{
    uint32_t c;
    int best = 0;
    if (rt == NULL || rt->model == NULL || rt->stats.steps == 0u) {
        return -1;
    }
    for (c = 1; c < rt->model->n_classes; ++c) {
        if (rt->score[c] > rt->score[best]) {
            best = (int)c;
        }
    }
    return best;
}

sg_status sg_score_from(sg_runtime *rt, uint32_t step)
{
    uint32_t c;
    if (rt == NULL) {
        return SG_ERR_ARG;
    }
    rt->score_start = step;
    for (c = 0; c < SG_MAX_CLASSES; ++c) {
        rt->score[c] = 0;
    }
    return SG_OK;
}

sg_status sg_get_stats(const sg_runtime *rt, sg_stats *out)
{
    if (rt == NULL || out == NULL) {
        return SG_ERR_ARG;
    }
    *out = rt->stats;
    return SG_OK;
}
