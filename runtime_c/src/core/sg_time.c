/* SPDX-License-Identifier: MIT */
/*
 * The time base, once for every kind: step s covers [t0 + s dt, t0 + (s + 1) dt); the
 * origin t0 is sg_set_origin's or comes from the first event; whole steps run in order
 * (open, input, close, then the scores and the step count); an event or time before the
 * current step is SG_ERR_TIME. What a step does is the model's engine's.
 */
#include "sg_engine.h"

static void open_step(sg_runtime *rt)
{
    rt->model->engine->open_step(rt);
    rt->step_open = 1;
}

/* After the engine closed a step (logits written): the scores (FORMAT.md §3, §8) and the
 * step count. */
static void end_step(sg_runtime *rt)
{
    if (rt->step >= rt->score_start && rt->step >= rt->first_scored) {
        const uint32_t n = rt->model->n_classes;
        uint32_t c;
        for (c = 0; c < n; ++c) {
            rt->score[c] += rt->logits[c];
        }
    }
    rt->step++;
    rt->stats.steps++;
    rt->step_open = 0;
}

/* The current step, whole, with whatever input it has received. */
static void run_step(sg_runtime *rt)
{
    if (!rt->step_open) {
        open_step(rt);
    }
    rt->model->engine->close_step(rt);
    end_step(rt);
}

sg_status sg_set_origin(sg_runtime *rt, int64_t t0_us)
{
    if (rt == NULL || rt->model == NULL) {
        return SG_ERR_ARG;
    }
    if (rt->has_origin) {
        return SG_ERR_TIME;
    }
    rt->t0_us = t0_us;
    rt->has_origin = 1;
    return SG_OK;
}

/* Make the step holding @p t_us the open one: a missing origin set so that @p t_us falls
 * in the current step, the steps before it run. On success *t_lo is the step's first µs. */
static sg_status goto_step(sg_runtime *rt, int64_t t_us, uint64_t dt, int64_t *t_lo)
{
    uint64_t off;
    uint64_t start;
    if (!rt->has_origin) { /* the first event starts the current step */
        const uint64_t before = (uint64_t)rt->step * dt;
        if (before > (uint64_t)INT64_MAX || t_us < INT64_MIN + (int64_t)before) {
            return SG_ERR_TIME;
        }
        rt->t0_us = t_us - (int64_t)before;
        rt->has_origin = 1;
    }
    if (t_us < rt->t0_us || rt->step == UINT32_MAX) {
        return SG_ERR_TIME;
    }
    off = (uint64_t)t_us - (uint64_t)rt->t0_us;
    start = (uint64_t)rt->step * dt;
    if (off < start) { /* before the current step */
        return SG_ERR_TIME;
    }
    if (off - start >= dt) { /* a later step: one division per step, not per event */
        const uint64_t s = off / dt;
        if (s >= UINT32_MAX) {
            return SG_ERR_TIME;
        }
        while (rt->step < s) {
            run_step(rt);
        }
        start = (uint64_t)rt->step * dt;
    }
    if (!rt->step_open) {
        open_step(rt);
    }
    /* t0 + start <= t_us, so it fits */
    *t_lo = (int64_t)((uint64_t)rt->t0_us + start);
    return SG_OK;
}

sg_status sg_feed(sg_runtime *rt, const sg_event *events, size_t n)
{
    const sg_engine *en;
    uint64_t dt;
    size_t in = 0;
    size_t dropped = 0;
    sg_status status = SG_OK;
    size_t e = 0;
    if (rt == NULL || rt->model == NULL || (events == NULL && n > 0u)) {
        return SG_ERR_ARG;
    }
    if (sg_model_count_channels(rt->model) == 0u) {
        return SG_ERR_UNSUPPORTED; /* tensor input: sg_step_tensor only */
    }
    en = rt->model->engine;
    dt = rt->model->dt_us;
    while (e < n) { /* a run of events inside one step: its first event places the step */
        int64_t t_lo;
        status = goto_step(rt, events[e].t_us, dt, &t_lo);
        if (status != SG_OK) {
            break;
        }
        e = en->feed(rt, events, e, n, t_lo, &in, &dropped);
    }
    rt->stats.events_in += in;
    rt->stats.events_dropped += dropped;
    return status;
}

sg_status sg_advance_to(sg_runtime *rt, int64_t t_us)
{
    uint64_t done;
    if (rt == NULL || rt->model == NULL) {
        return SG_ERR_ARG;
    }
    if (!rt->has_origin) {
        return SG_ERR_TIME;
    }
    if (sg_model_count_channels(rt->model) == 0u) {
        return SG_ERR_UNSUPPORTED; /* tensor input: sg_step_tensor only */
    }
    if (t_us < rt->t0_us) {
        return SG_OK;
    }
    done = ((uint64_t)t_us - (uint64_t)rt->t0_us) / (uint64_t)rt->model->dt_us;
    if (done >= UINT32_MAX) {
        return SG_ERR_TIME;
    }
    while (rt->step < done) {
        run_step(rt);
    }
    return SG_OK;
}

sg_status sg_step(sg_runtime *rt, const uint16_t *counts)
{
    if (rt == NULL || rt->model == NULL) {
        return SG_ERR_ARG;
    }
    if (rt->step == UINT32_MAX) {
        return SG_ERR_TIME;
    }
    if (sg_model_count_channels(rt->model) == 0u) {
        return SG_ERR_UNSUPPORTED; /* tensor input: sg_step_tensor only */
    }
    if (!rt->step_open) {
        open_step(rt);
    }
    if (counts != NULL) {
        rt->model->engine->add_counts(rt, counts);
    }
    rt->model->engine->close_step(rt);
    end_step(rt);
    return SG_OK;
}

sg_status sg_step_tensor(sg_runtime *rt, const int8_t *x)
{
    if (rt == NULL || rt->model == NULL || x == NULL) {
        return SG_ERR_ARG;
    }
    if (rt->model->engine->step_tensor == NULL || sg_model_count_channels(rt->model) != 0u) {
        return SG_ERR_UNSUPPORTED; /* a kind or model that takes events or counts */
    }
    if (rt->step == UINT32_MAX) {
        return SG_ERR_TIME;
    }
    rt->model->engine->step_tensor(rt, x);
    end_step(rt);
    return SG_OK;
}
