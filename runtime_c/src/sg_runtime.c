/* SPDX-License-Identifier: MIT */
/*
 * Runtime state over one caller arena: init / reset, the time base, the three phases
 * of a step (docs/FORMAT.md §3), readouts and statistics.
 */
#include "sg_internal.h"

/* ---------------------------------------------------------------- arena */

sg_status sg_runtime_init(sg_runtime *rt, const sg_model *model, void *arena, size_t arena_size)
{
    uint8_t *p;
    uint32_t l;
    if (rt == NULL || model == NULL || arena == NULL || model->data == NULL) {
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
    p = rt->arena;
    for (l = 0; l < SG_MAX_STAGES; ++l) {
        rt->z[l] = NULL;
        rt->enc[l] = NULL;
        rt->ring[l] = NULL;
    }
    for (l = 0; l < model->n_stages; ++l) {
        const sg_stage *st = &model->stages[l];
        rt->z[l] = (int32_t *)(void *)p;
        p += (size_t)4u * model->n_buckets * st->n_out;
        if ((st->flags & 1u) == 0u) {
            rt->enc[l] = (int32_t *)(void *)p;
            p += (size_t)4u * st->n_out;
        }
        if ((st->flags & 2u) != 0u) {
            rt->ring[l] = (int32_t *)(void *)p;
            p += (size_t)4u * ((size_t)st->max_delay + 1u) * st->n_in;
        }
    }
    rt->arena_used = (size_t)(p - rt->arena);
    rt->score_start = 0;
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
    return SG_OK;
}

size_t sg_arena_used(const sg_runtime *rt)
{
    return rt == NULL ? 0u : rt->arena_used;
}

/* ---------------------------------------------------------------- one step */

/* Phase 1: decays of every stage. */
static void open_step(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    uint32_t l;
    for (l = 0; l < m->n_stages; ++l) {
        sg_decay_stage(&m->stages[l], m->n_buckets, rt->z[l]);
    }
    rt->step_open = 1;
}

/* An event (or @p count of them) at synaptic input i of stage l in the current step:
 * into the delay ring, or scattered into bucket 0 at once. */
static void deliver(sg_runtime *rt, uint32_t l, uint32_t i, uint32_t count)
{
    const sg_stage *st = &rt->model->stages[l];
    if (rt->ring[l] != NULL) {
        const uint32_t slots = (uint32_t)st->max_delay + 1u;
        const uint32_t slot = (uint32_t)(((uint64_t)rt->step + st->delays[i]) % slots);
        int32_t *c = rt->ring[l] + (size_t)slot * st->n_in + i;
        *c = (int32_t)((uint32_t)*c + count);
        rt->stats.synops += (uint64_t)count * sg_fanout(st, i); /* counted on arrival */
    } else {
        const uint32_t ops = st->kind == 1u ? sg_scatter_dense(st, i, count, rt->z[l])
                                            : sg_scatter(st, i, (int32_t)count, rt->z[l]);
        rt->stats.synops += (uint64_t)count * ops;
    }
}

/* A raw input (of stage l's in_c x in_h x in_w) through pooling; 0 if dropped. */
static int route(sg_runtime *rt, uint32_t l, uint32_t raw, uint32_t count)
{
    const sg_stage *st = &rt->model->stages[l];
    int32_t i = st->pool == 1u ? (int32_t)raw : sg_pool_index(st, raw);
    if (i < 0) {
        return 0;
    }
    deliver(rt, l, (uint32_t)i, count);
    return 1;
}

/* Phase 3 (FORMAT.md §3 step 3) and the end of the step. */
static void close_step(sg_runtime *rt)
{
    const sg_model *m = rt->model;
    const uint16_t k = m->n_buckets;
    uint32_t l;
    uint32_t j;
    for (l = 0; l < m->n_stages; ++l) {
        const sg_stage *st = &m->stages[l];
        int32_t *z = rt->z[l];
        if (rt->ring[l] != NULL) { /* a. the ring slot of this step */
            const uint32_t slot = rt->step % ((uint32_t)st->max_delay + 1u);
            int32_t *c = rt->ring[l] + (size_t)slot * st->n_in;
            uint32_t i;
            for (i = 0; i < st->n_in; ++i) {
                if (c[i] != 0) {
                    (void)sg_scatter(st, i, c[i], z);
                    c[i] = 0;
                }
            }
        }
        if ((st->flags & 1u) != 0u) { /* c. output stage: logits */
            for (j = 0; j < st->n_out; ++j) {
                const int32_t x = sg_neuron_x(st, k, z, j);
                rt->logits[j] = x;
                if (rt->step >= rt->score_start) {
                    rt->score[j] += x;
                }
            }
            break;
        }
        { /* d. hidden: encoder, spikes into stage l + 1 */
            const uint16_t a0 = m->stages[l + 1u].alpha[0];
            const uint32_t spatial = (uint32_t)st->out_h * st->out_w;
            int32_t *enc = rt->enc[l];
            for (j = 0; j < st->n_out; ++j) {
                const int32_t x = sg_neuron_x(st, k, z, j);
                const int64_t y = x > 0 ? x : 0;
                const int32_t p = enc[j] != 0 ? sg_decay(enc[j], a0, 0) : 0;
                const int64_t theta = st->theta[j / spatial];
                if (y - p > theta) {
                    enc[j] = sg_sat32((int64_t)p + 2 * theta);
                    rt->stats.spikes[l]++;
                    (void)route(rt, l + 1u, j, 1u);
                } else {
                    enc[j] = p;
                }
            }
        }
    }
    rt->step++;
    rt->stats.steps++;
    rt->step_open = 0;
}

static void run_step(sg_runtime *rt)
{
    if (!rt->step_open) {
        open_step(rt);
    }
    close_step(rt);
}

/* ---------------------------------------------------------------- time base */

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

sg_status sg_feed(sg_runtime *rt, const sg_event *events, size_t n)
{
    const sg_model *m;
    size_t e;
    if (rt == NULL || rt->model == NULL || (events == NULL && n > 0u)) {
        return SG_ERR_ARG;
    }
    m = rt->model;
    for (e = 0; e < n; ++e) {
        const sg_event *ev = &events[e];
        const int64_t dt = (int64_t)m->dt_us;
        uint64_t s;
        if (!rt->has_origin) { /* the first event starts the current step */
            const uint64_t before = (uint64_t)rt->step * (uint64_t)dt;
            if (before > (uint64_t)INT64_MAX || ev->t_us < INT64_MIN + (int64_t)before) {
                return SG_ERR_TIME;
            }
            rt->t0_us = ev->t_us - (int64_t)before;
            rt->has_origin = 1;
        }
        if (ev->t_us < rt->t0_us) {
            return SG_ERR_TIME;
        }
        s = ((uint64_t)ev->t_us - (uint64_t)rt->t0_us) / (uint64_t)dt;
        if (s < rt->step || s >= UINT32_MAX) {
            return SG_ERR_TIME;
        }
        while (rt->step < s) {
            run_step(rt);
        }
        if (!rt->step_open) {
            open_step(rt);
        }
        if (ev->x >= m->sensor_w || ev->y >= m->sensor_h || ev->p > 1u) {
            rt->stats.events_dropped++;
            continue;
        }
        {
            /* Downsampling then stage 0's pooling, in one step: both are floor divisions,
             * and floor(floor(v / ds) / pool) = floor(v / (ds pool)); the raw row is
             * always < in_h (in_h = sensor_h / ds), so only the pooled grid can drop. */
            const sg_stage *st = &m->stages[0];
            const uint32_t f = (uint32_t)m->downsample * st->pool;
            const uint32_t c = m->in_c == 2u ? ev->p : 0u;
            const uint32_t r = (uint32_t)ev->y / f;
            const uint32_t q = (uint32_t)ev->x / f;
            if (r < st->syn_h && q < st->syn_w) {
                deliver(rt, 0, (c * st->syn_h + r) * st->syn_w + q, 1u);
                rt->stats.events_in++;
            } else {
                rt->stats.events_dropped++;
            }
        }
    }
    return SG_OK;
}

sg_status sg_advance_to(sg_runtime *rt, int64_t t_us)
{
    int64_t dt;
    if (rt == NULL || rt->model == NULL) {
        return SG_ERR_ARG;
    }
    if (!rt->has_origin) {
        return SG_ERR_TIME;
    }
    dt = (int64_t)rt->model->dt_us;
    if (t_us < rt->t0_us) {
        return SG_OK;
    }
    {
        const uint64_t done = ((uint64_t)t_us - (uint64_t)rt->t0_us) / (uint64_t)dt;
        if (done >= UINT32_MAX) {
            return SG_ERR_TIME;
        }
        while (rt->step < done) {
            run_step(rt);
        }
    }
    return SG_OK;
}

sg_status sg_step(sg_runtime *rt, const uint16_t *counts)
{
    const sg_model *m;
    if (rt == NULL || rt->model == NULL) {
        return SG_ERR_ARG;
    }
    if (rt->step == UINT32_MAX) {
        return SG_ERR_TIME;
    }
    m = rt->model;
    if (!rt->step_open) {
        open_step(rt);
    }
    if (counts != NULL) {
        const uint32_t n_raw = (uint32_t)m->in_c * m->in_h * m->in_w;
        uint32_t i;
        for (i = 0; i < n_raw; ++i) {
            if (counts[i] != 0u) {
                if (route(rt, 0, i, counts[i])) {
                    rt->stats.events_in += counts[i];
                } else {
                    rt->stats.events_dropped += counts[i];
                }
            }
        }
    }
    close_step(rt);
    return SG_OK;
}

/* ---------------------------------------------------------------- readouts */

const int32_t *sg_logits(const sg_runtime *rt)
{
    return rt == NULL ? NULL : rt->logits;
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
