/* SPDX-License-Identifier: MIT */
/*
 * Runtime state over one caller arena: init / reset, the time base, the three phases
 * of a step (docs/FORMAT.md §3), readouts and statistics.
 */
#include <string.h>

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
        rt->qacc[l] = NULL;
        rt->qq[l] = NULL;
    }
    rt->qx = NULL;
    rt->qring = NULL;
    rt->qslice = NULL;
    rt->qscratch = NULL;
    rt->score_start = 0;
    if (model->format_version == SG_FORMAT_VERSION_QNET) {
        rt->arena_used = sg_qnet_layout(rt);
        return sg_runtime_reset(rt);
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
    if (rt->qx != NULL) {
        sg_qnet_reset(rt);
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

/* Neurons whose x one call of sg_stage_x computes (128 B of stack). */
#define SG_X_CHUNK 32u

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
        if ((st->flags & 1u) != 0u) { /* c. output stage: logits (n_out <= SG_MAX_CLASSES) */
            sg_stage_x(st, k, z, 0, st->n_out, rt->logits);
            if (rt->step >= rt->score_start) {
                for (j = 0; j < st->n_out; ++j) {
                    rt->score[j] += rt->logits[j];
                }
            }
            break;
        }
        { /* d. hidden: encoder, spikes into stage l + 1; x a chunk at a time */
            const uint16_t a0 = m->stages[l + 1u].alpha[0];
            const uint32_t spatial = (uint32_t)st->out_h * st->out_w;
            const uint32_t n = st->n_out;
            int32_t *enc = rt->enc[l];
            uint64_t spikes = 0;
            uint32_t j0;
            for (j0 = 0; j0 < n; j0 += SG_X_CHUNK) {
                const uint32_t cnt = n - j0 < SG_X_CHUNK ? n - j0 : SG_X_CHUNK;
                int32_t xs[SG_X_CHUNK];
                uint32_t c;
                sg_stage_x(st, k, z, j0, cnt, xs);
                for (c = 0; c < cnt; ++c) {
                    const int32_t y = xs[c] > 0 ? xs[c] : 0;
                    /* e >= 0 always (it starts at 0, decays towards 0 or grows by 2 theta),
                     * so p >= 0 and y - p cannot overflow; theta <= 2^29 */
                    const int32_t p = enc[j0 + c] != 0 ? sg_decay(enc[j0 + c], a0, 0) : 0;
                    const int32_t theta = st->theta[(j0 + c) / spatial];
                    if (y - p > theta) {
                        enc[j0 + c] = p > INT32_MAX - 2 * theta ? INT32_MAX : p + 2 * theta;
                        ++spikes;
                        (void)route(rt, l + 1u, j0 + c, 1u);
                    } else {
                        enc[j0 + c] = p;
                    }
                }
            }
            rt->stats.spikes[l] += spikes;
        }
    }
    rt->step++;
    rt->stats.steps++;
    rt->step_open = 0;
}

static void run_step(sg_runtime *rt)
{
    if (rt->qx != NULL) { /* version 2 */
        if (!rt->step_open) {
            sg_qnet_open_step(rt);
        }
        sg_qnet_close_step(rt);
        return;
    }
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

/* Stage-0 events of the open step, summed per synaptic input within one sg_feed call
 * (an open-addressing table on the stack) and scattered once per input: wrap32 adds
 * commute, so count x W equals count single adds exactly (FORMAT.md §3 step 2). The
 * table is flushed before the step closes and before sg_feed returns, so the state
 * between calls is the same as with one scatter per event. */
#define SG_PENDING_SLOTS 32u /* a power of two; 256 B of stack */
#define SG_PENDING_FILL 24u  /* flush at 3/4 full: probes stay short */

typedef struct sg_pending {
    uint32_t input[SG_PENDING_SLOTS];
    uint32_t count[SG_PENDING_SLOTS]; /* 0 = empty slot */
    uint32_t used;
} sg_pending;

static void pending_flush(sg_runtime *rt, sg_pending *pd)
{
    const sg_stage *st = &rt->model->stages[0];
    uint64_t ops = 0;
    uint32_t held = SG_PENDING_SLOTS; /* a dense input waiting for a partner */
    uint32_t h;
    if (pd->used == 0u) {
        return;
    }
    for (h = 0; h < SG_PENDING_SLOTS; ++h) {
        const uint32_t c = pd->count[h];
        if (c == 0u) {
            continue;
        }
        if (st->kind != 1u) {
            ops += (uint64_t)c * sg_scatter(st, pd->input[h], (int32_t)c, rt->z[0]);
        } else if (held == SG_PENDING_SLOTS) {
            held = h;
            continue; /* its count is cleared with its partner's */
        } else {
            const uint32_t c1 = pd->count[held];
            ops += ((uint64_t)c1 + c) *
                   sg_scatter_dense2(st, pd->input[held], c1, pd->input[h], c, rt->z[0]);
            pd->count[held] = 0;
            held = SG_PENDING_SLOTS;
        }
        pd->count[h] = 0;
    }
    if (held != SG_PENDING_SLOTS) {
        const uint32_t c1 = pd->count[held];
        ops += (uint64_t)c1 * sg_scatter_dense(st, pd->input[held], c1, rt->z[0]);
        pd->count[held] = 0;
    }
    pd->used = 0;
    rt->stats.synops += ops;
}

SG_INLINE void pending_add(sg_runtime *rt, sg_pending *pd, uint32_t i)
{
    uint32_t h = i & (SG_PENDING_SLOTS - 1u);
    for (;;) {
        if (pd->count[h] == 0u) {
            pd->input[h] = i;
            pd->count[h] = 1u;
            if (++pd->used == SG_PENDING_FILL) {
                pending_flush(rt, pd);
            }
            return;
        }
        if (pd->input[h] == i) {
            if (++pd->count[h] == UINT32_MAX) { /* never wraps: synops stay exact */
                pending_flush(rt, pd);
            }
            return;
        }
        h = (h + 1u) & (SG_PENDING_SLOTS - 1u);
    }
}

/* Where the events of the current step go: its time span and stage 0's input mapping. */
typedef struct sg_feed_ctx {
    int64_t t_lo; /* first µs of the open step */
    uint64_t dt;  /* its length */
    uint32_t f;   /* downsample x pool: sensor pixel -> synaptic row/column */
    uint16_t sensor_w, sensor_h, syn_h, syn_w;
    uint8_t two_ch; /* in_c = 2: the polarity is the channel */
    uint8_t pooled; /* counts go through the pending table (no delay ring) */
} sg_feed_ctx;

/* Events e .. n-1 while they fall in the open step; returns the first one that does not.
 * The hot loop of sg_feed: no 64-bit division, nothing but the event and the table. */
static size_t feed_step(sg_runtime *rt, const sg_feed_ctx *cx, sg_pending *pd,
                        const sg_event *events, size_t e, size_t n, size_t *in, size_t *dropped)
{
    for (; e < n; ++e) {
        const sg_event *ev = &events[e];
        uint32_t r;
        uint32_t q;
        uint32_t i;
        if (ev->t_us < cx->t_lo || (uint64_t)ev->t_us - (uint64_t)cx->t_lo >= cx->dt) {
            break; /* not in the open step */
        }
        if (ev->x >= cx->sensor_w || ev->y >= cx->sensor_h || ev->p > 1u) {
            ++*dropped;
            continue;
        }
        r = (uint32_t)ev->y / cx->f;
        q = (uint32_t)ev->x / cx->f;
        if (r >= cx->syn_h || q >= cx->syn_w) {
            ++*dropped;
            continue;
        }
        i = ((cx->two_ch ? (uint32_t)ev->p : 0u) * cx->syn_h + r) * cx->syn_w + q;
        if (cx->pooled) {
            pending_add(rt, pd, i);
        } else {
            deliver(rt, 0, i, 1u);
        }
        ++*in;
    }
    return e;
}

/* Where a version 2 step starts, by the same time rules as version 1 (the first event
 * sets a missing origin; an event before the current step stops with SG_ERR_TIME). */
static sg_status qnet_goto(sg_runtime *rt, int64_t t_us)
{
    const uint64_t dt = rt->model->dt_us;
    uint64_t off;
    uint64_t s;
    if (!rt->has_origin) {
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
    s = off / dt;
    if (s < rt->step) {
        return SG_ERR_TIME;
    }
    if (s >= UINT32_MAX) {
        return SG_ERR_TIME;
    }
    while (rt->step < s) {
        run_step(rt);
    }
    if (!rt->step_open) {
        sg_qnet_open_step(rt);
    }
    return SG_OK;
}

/* sg_feed of version 2 event-count models: each event adds 1 (saturating) to its cell
 * in the open step's ring slot; the step's end runs the encoder and the layers. */
static sg_status feed_qnet(sg_runtime *rt, const sg_event *events, size_t n)
{
    const sg_model *m = rt->model;
    const sg_qlayer *in = &m->qlayers[0];
    const uint64_t dt = m->dt_us;
    const size_t cells = (size_t)in->depth_multiplier * in->out_h * in->out_w;
    const uint32_t ds = m->downsample;
    const int two_ch = in->depth_multiplier == 2u;
    uint64_t accepted = 0;
    uint64_t dropped = 0;
    sg_status status = SG_OK;
    uint16_t *row = NULL;
    uint64_t end = 0; /* offset from t0 where the open step ends */
    size_t e;
    for (e = 0; e < n; ++e) {
        const sg_event *ev = &events[e];
        uint32_t cell;
        if (row == NULL || ev->t_us < rt->t0_us ||
            (uint64_t)ev->t_us - (uint64_t)rt->t0_us >= end ||
            (uint64_t)ev->t_us - (uint64_t)rt->t0_us < end - dt) {
            status = qnet_goto(rt, ev->t_us);
            if (status != SG_OK) {
                break;
            }
            row = rt->qring + (size_t)(rt->step % ((uint32_t)in->kernel_w + 1u)) * cells;
            end = ((uint64_t)rt->step + 1u) * dt;
        }
        if (ev->x >= m->sensor_w || ev->y >= m->sensor_h || ev->p > 1u) {
            ++dropped;
            continue;
        }
        cell = ((two_ch ? (uint32_t)ev->p : 0u) * in->out_h + (uint32_t)ev->y / ds) * in->out_w +
               (uint32_t)ev->x / ds;
        if (row[cell] != UINT16_MAX) {
            row[cell]++;
        }
        ++accepted;
    }
    rt->stats.events_in += accepted;
    rt->stats.events_dropped += dropped;
    return status;
}

sg_status sg_feed(sg_runtime *rt, const sg_event *events, size_t n)
{
    const sg_model *m;
    const sg_stage *st;
    sg_pending pd;
    sg_feed_ctx cx;
    uint64_t dt;
    size_t in = 0;
    size_t dropped = 0;
    sg_status status = SG_OK;
    uint32_t h;
    size_t e = 0;
    if (rt == NULL || rt->model == NULL || (events == NULL && n > 0u)) {
        return SG_ERR_ARG;
    }
    if (rt->qx != NULL) {
        return rt->qring != NULL ? feed_qnet(rt, events, n) : SG_ERR_UNSUPPORTED;
    }
    m = rt->model;
    st = &m->stages[0];
    dt = m->dt_us;
    /* Downsampling then stage 0's pooling, in one step: both are floor divisions, and
     * floor(floor(v / ds) / pool) = floor(v / (ds pool)); the raw row is always < in_h
     * (in_h = sensor_h / ds), so only the pooled grid can drop. */
    cx.dt = dt;
    cx.f = (uint32_t)m->downsample * st->pool;
    cx.sensor_w = m->sensor_w;
    cx.sensor_h = m->sensor_h;
    cx.syn_h = st->syn_h;
    cx.syn_w = st->syn_w;
    cx.two_ch = m->in_c == 2u;
    cx.pooled = rt->ring[0] == NULL; /* a delay ring already sums counts per input */
    for (h = 0; h < SG_PENDING_SLOTS; ++h) {
        pd.count[h] = 0;
    }
    pd.used = 0;
    while (e < n) { /* the first event of a step (or of the call): time checks, then the step */
        const sg_event *ev = &events[e];
        uint64_t off;
        uint64_t start;
        if (!rt->has_origin) { /* the first event starts the current step */
            const uint64_t before = (uint64_t)rt->step * dt;
            if (before > (uint64_t)INT64_MAX || ev->t_us < INT64_MIN + (int64_t)before) {
                status = SG_ERR_TIME;
                break;
            }
            rt->t0_us = ev->t_us - (int64_t)before;
            rt->has_origin = 1;
        }
        if (ev->t_us < rt->t0_us || rt->step == UINT32_MAX) {
            status = SG_ERR_TIME;
            break;
        }
        off = (uint64_t)ev->t_us - (uint64_t)rt->t0_us;
        start = (uint64_t)rt->step * dt;
        if (off < start) { /* before the current step */
            status = SG_ERR_TIME;
            break;
        }
        if (off - start >= dt) { /* a later step: one division per step, not per event */
            const uint64_t s = off / dt;
            if (s >= UINT32_MAX) {
                status = SG_ERR_TIME;
                break;
            }
            pending_flush(rt, &pd); /* into the step that is about to close */
            while (rt->step < s) {
                run_step(rt);
            }
            start = (uint64_t)rt->step * dt;
        }
        if (!rt->step_open) {
            open_step(rt);
        }
        /* the step's start in absolute µs: t0 + start <= this event's time, so it fits */
        cx.t_lo = (int64_t)((uint64_t)rt->t0_us + start);
        e = feed_step(rt, &cx, &pd, events, e, n, &in, &dropped);
    }
    pending_flush(rt, &pd);
    rt->stats.events_in += in;
    rt->stats.events_dropped += dropped;
    return status;
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
    if (rt->qx != NULL && rt->qring == NULL) {
        return SG_ERR_UNSUPPORTED; /* tensor input: sg_step_tensor only */
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

/* The inputs of a frame reach a dense stage 0 without a delay ring two at a time
 * (sg_scatter_dense2); anything else goes through deliver. */
typedef struct sg_pair {
    uint32_t input;
    uint32_t count; /* 0: no input held */
    int direct;
} sg_pair;

static void frame_add(sg_runtime *rt, sg_pair *pr, uint32_t i, uint32_t count)
{
    const sg_stage *st = &rt->model->stages[0];
    if (!pr->direct) {
        deliver(rt, 0, i, count);
    } else if (pr->count == 0u) {
        pr->input = i;
        pr->count = count;
    } else {
        rt->stats.synops += ((uint64_t)pr->count + count) *
                            sg_scatter_dense2(st, pr->input, pr->count, i, count, rt->z[0]);
        pr->count = 0;
    }
}

static void frame_add_end(sg_runtime *rt, sg_pair *pr)
{
    if (pr->count != 0u) {
        deliver(rt, 0, pr->input, pr->count);
        pr->count = 0;
    }
}

/* Stage-0 input of a dense frame (FORMAT.md §3 step 2). The counts of the pixels that
 * pool into one synaptic input are summed and scattered once: wrap32 adds commute,
 * so count_a W + count_b W = (count_a + count_b) W exactly. */
static void frame_input(sg_runtime *rt, const uint16_t *counts)
{
    const sg_model *m = rt->model;
    const sg_stage *st = &m->stages[0];
    const uint32_t pool = st->pool;
    const uint32_t in_h = st->in_h;
    const uint32_t in_w = st->in_w;
    const uint32_t n_raw = (uint32_t)st->in_c * in_h * in_w;
    uint64_t in = 0;
    uint64_t dropped = 0;
    sg_pair pr;
    uint32_t i;
    pr.input = 0;
    pr.count = 0;
    pr.direct = st->kind == 1u && rt->ring[0] == NULL;
    if (pool == 1u) { /* raw input = synaptic input; skip zeros four at a time */
        for (i = 0; i + 4u <= n_raw; i += 4u) {
            if ((counts[i] | counts[i + 1u] | counts[i + 2u] | counts[i + 3u]) != 0u) {
                uint32_t b;
                for (b = i; b < i + 4u; ++b) {
                    if (counts[b] != 0u) {
                        frame_add(rt, &pr, b, counts[b]);
                        in += counts[b];
                    }
                }
            }
        }
        for (; i < n_raw; ++i) {
            if (counts[i] != 0u) {
                frame_add(rt, &pr, i, counts[i]);
                in += counts[i];
            }
        }
    } else if (pool <= 256u) { /* a window's sum (<= 256^2 x 65535) fits uint32 */
        const uint32_t used_h = (uint32_t)st->syn_h * pool;
        const uint32_t used_w = (uint32_t)st->syn_w * pool;
        uint32_t c;
        uint32_t r;
        uint32_t q;
        i = 0; /* synaptic input index, channel-major */
        for (c = 0; c < st->in_c; ++c) {
            const uint16_t *plane = counts + (size_t)c * in_h * in_w;
            for (r = 0; r < used_h; r += pool) {
                const uint16_t *row = plane + (size_t)r * in_w;
                if (pool == 2u) { /* the common case: two rows, column pairs */
                    const uint16_t *r0 = row;
                    const uint16_t *r1 = row + in_w;
                    for (q = 0; q < used_w; q += 2u, ++i) {
                        /* two counts per 32-bit load (memcpy: any alignment, no
                         * aliasing); an empty window, the common case, costs one test */
                        uint32_t a;
                        uint32_t b;
                        memcpy(&a, r0 + q, sizeof a);
                        memcpy(&b, r1 + q, sizeof b);
                        if ((a | b) != 0u) {
                            const uint32_t sum =
                                (a & 0xFFFFu) + (a >> 16) + (b & 0xFFFFu) + (b >> 16);
                            frame_add(rt, &pr, i, sum);
                            in += sum;
                        }
                    }
                } else {
                    for (q = 0; q < used_w; q += pool, ++i) {
                        const uint16_t *px = row + q;
                        uint32_t sum = 0;
                        uint32_t dr;
                        uint32_t dq;
                        for (dr = 0; dr < pool; ++dr, px += in_w) {
                            for (dq = 0; dq < pool; ++dq) {
                                sum += px[dq];
                            }
                        }
                        if (sum != 0u) {
                            frame_add(rt, &pr, i, sum);
                            in += sum;
                        }
                    }
                }
                for (; q < in_w; ++q) { /* columns floor pooling drops */
                    uint32_t dr;
                    for (dr = 0; dr < pool; ++dr) {
                        dropped += row[(size_t)dr * in_w + q];
                    }
                }
            }
            for (; r < in_h; ++r) { /* rows floor pooling drops */
                for (q = 0; q < in_w; ++q) {
                    dropped += plane[(size_t)r * in_w + q];
                }
            }
        }
    } else {
        for (i = 0; i < n_raw; ++i) {
            if (counts[i] != 0u) {
                if (route(rt, 0, i, counts[i])) {
                    in += counts[i];
                } else {
                    dropped += counts[i];
                }
            }
        }
    }
    frame_add_end(rt, &pr);
    rt->stats.events_in += in;
    rt->stats.events_dropped += dropped;
}

sg_status sg_step(sg_runtime *rt, const uint16_t *counts)
{
    if (rt == NULL || rt->model == NULL) {
        return SG_ERR_ARG;
    }
    if (rt->step == UINT32_MAX) {
        return SG_ERR_TIME;
    }
    if (rt->qx != NULL) { /* version 2: counts of the P x in_h x in_w cells */
        if (rt->qring == NULL) {
            return SG_ERR_UNSUPPORTED;
        }
        if (!rt->step_open) {
            sg_qnet_open_step(rt);
        }
        if (counts != NULL) {
            sg_qnet_add_counts(rt, counts);
        }
        sg_qnet_close_step(rt);
        return SG_OK;
    }
    if (!rt->step_open) {
        open_step(rt);
    }
    if (counts != NULL) {
        frame_input(rt, counts);
    }
    close_step(rt);
    return SG_OK;
}

sg_status sg_step_tensor(sg_runtime *rt, const int8_t *x)
{
    if (rt == NULL || rt->model == NULL || x == NULL) {
        return SG_ERR_ARG;
    }
    if (rt->qx == NULL || rt->qring != NULL) {
        return SG_ERR_UNSUPPORTED;
    }
    if (rt->step == UINT32_MAX) {
        return SG_ERR_TIME;
    }
    sg_qnet_step_tensor(rt, x);
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
