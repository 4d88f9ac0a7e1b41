/* SPDX-License-Identifier: MIT */
/*
 * Device-cost driver (bench/device_cost.py): runs the C runtime over the gestures of a
 * job placed in RAM by QEMU (dc_job.h), through the public API only (sg_model_load,
 * sg_runtime_init, sg_runtime_reset, sg_score_from, sg_step or sg_set_origin + sg_feed +
 * sg_advance_to, sg_logits, sg_prediction, sg_get_stats). A baseline job takes the same path
 * without the runtime calls, so the difference of the two instruction counts is the inference
 * alone.
 */
#include "dc_dense.h"
#include "dc_job.h"
#include "dc_port.h"
#include "sg_runtime.h"

#ifndef DC_ARENA_BYTES
#define DC_ARENA_BYTES 65536u /* the arena budget (issue: <= 64 KiB) */
#endif
#ifndef DC_MAX_INPUTS
#define DC_MAX_INPUTS 2048u /* frame buffer: 2 x 32 x 32 counts */
#endif
#ifndef DC_PACKET
#define DC_PACKET 64u /* events per sg_feed call, as a camera driver's packet */
#endif

static uint32_t dc_arena[(DC_ARENA_BYTES + 3u) / 4u];
static uint16_t dc_frame[DC_MAX_INPUTS];
static sg_event dc_packet[DC_PACKET];
static const int32_t dc_no_logits[SG_MAX_CLASSES]; /* what the baseline hashes */
static sg_model dc_model;
static sg_runtime dc_rt;
static int32_t dc_dense_logits[SG_MAX_CLASSES];
static int64_t dc_dense_scores[SG_MAX_CLASSES];

/* Same work in both modes: one result record and its scores through semihosting. */
static int32_t dc_emit(int32_t handle, const dc_gesture_result *r, const int64_t *scores,
                       uint32_t n_classes)
{
    if (dc_host_write(handle, r, (uint32_t)sizeof *r) != 0 ||
        dc_host_write(handle, scores, n_classes * (uint32_t)sizeof(int64_t)) != 0) {
        return DC_ERR_WRITE;
    }
    return 0;
}

static uint32_t dc_hash(uint32_t h, const int32_t *logits, uint32_t n_classes)
{
    uint32_t i;
    for (i = 0; i < n_classes; ++i) {
        h = (h ^ (uint32_t)logits[i]) * DC_FNV_PRIME;
    }
    return h;
}

/* The end of a gesture in both kinds: prediction and statistics (run only). */
static int32_t dc_finish(uint32_t run, dc_gesture_result *out)
{
    sg_stats stats;
    sg_status st;
    out->prediction = -1;
    if (!run) {
        return 0;
    }
    out->prediction = sg_prediction(&dc_rt);
    if ((st = sg_get_stats(&dc_rt, &stats)) != SG_OK) {
        return (int32_t)st;
    }
    out->steps = (uint32_t)stats.steps;
    out->synops = stats.synops;
    out->events_in = stats.events_in;
    out->events_dropped = stats.events_dropped;
    out->spikes0 = stats.spikes[0];
    return 0;
}

/* One DC_KIND_FRAMES gesture; *rec points at its record and is advanced past it. */
static int32_t dc_gesture_frames(const uint8_t **rec, uint32_t run, uint32_t n_inputs,
                                 uint32_t n_classes, dc_gesture_result *out)
{
    const uint32_t *head = (const uint32_t *)(const void *)*rec;
    const uint32_t n_steps = head[0];
    const uint16_t *p = (const uint16_t *)(const void *)(head + 2);
    uint32_t h = DC_FNV_BASIS;
    uint32_t s;
    uint64_t t = dc_ticks();
    int32_t rc;
    sg_status st;
    if (run) {
        if ((st = sg_runtime_reset(&dc_rt)) != SG_OK ||
            (st = sg_score_from(&dc_rt, head[1])) != SG_OK) {
            return (int32_t)st;
        }
    }
    for (s = 0; s < n_steps; ++s) {
        const uint32_t nnz = p[0];
        const uint16_t *pair = p + 1;
        const int32_t *logits = dc_no_logits;
        uint32_t i;
        for (i = 0; i < nnz; ++i) {
            if (pair[2u * i] >= n_inputs) {
                return DC_ERR_FRAME;
            }
            dc_frame[pair[2u * i]] = pair[2u * i + 1u];
        }
        if (run) {
            if ((st = sg_step(&dc_rt, dc_frame)) != SG_OK) {
                return (int32_t)st;
            }
            logits = sg_logits(&dc_rt);
        }
        h = dc_hash(h, logits, n_classes);
        for (i = 0; i < nnz; ++i) {
            dc_frame[pair[2u * i]] = 0u;
        }
        p = pair + 2u * nnz;
    }
    out->steps = n_steps;
    out->logit_hash = h;
    if ((rc = dc_finish(run, out)) != 0) {
        return rc;
    }
    out->ticks = dc_ticks() - t;
    if (((uintptr_t)p & 2u) != 0u) { /* records are padded to 4 bytes */
        ++p;
    }
    *rec = (const uint8_t *)(const void *)p;
    return 0;
}

/* One DC_KIND_EVENTS gesture: the events are copied into sg_event packets (what a camera
 * driver hands over), fed, and the gesture's last step closed. */
static int32_t dc_gesture_events(const uint8_t **rec, uint32_t run, uint32_t n_classes,
                                 dc_gesture_result *out)
{
    const uint32_t *head = (const uint32_t *)(const void *)*rec;
    const uint32_t n_steps = head[0];
    const uint32_t n_events = head[2];
    const dc_event_rec *ev = (const dc_event_rec *)(const void *)(head + 4);
    uint32_t e;
    uint64_t t = dc_ticks();
    int32_t rc;
    sg_status st;
    if (run) {
        if ((st = sg_runtime_reset(&dc_rt)) != SG_OK ||
            (st = sg_score_from(&dc_rt, head[1])) != SG_OK ||
            (st = sg_set_origin(&dc_rt, 0)) != SG_OK) {
            return (int32_t)st;
        }
    }
    for (e = 0; e < n_events; e += DC_PACKET) {
        const uint32_t m = n_events - e < DC_PACKET ? n_events - e : DC_PACKET;
        uint32_t i;
        for (i = 0; i < m; ++i) {
            dc_packet[i].t_us = (int64_t)ev[e + i].t_us;
            dc_packet[i].x = ev[e + i].x;
            dc_packet[i].y = ev[e + i].y;
            dc_packet[i].p = ev[e + i].p;
        }
        if (run && (st = sg_feed(&dc_rt, dc_packet, m)) != SG_OK) {
            return (int32_t)st;
        }
    }
    if (run && (st = sg_advance_to(&dc_rt, (int64_t)n_steps * dc_model.dt_us)) != SG_OK) {
        return (int32_t)st;
    }
    out->steps = n_steps;
    out->logit_hash = dc_hash(DC_FNV_BASIS, run ? sg_logits(&dc_rt) : dc_no_logits, n_classes);
    if ((rc = dc_finish(run, out)) != 0) {
        return rc;
    }
    out->ticks = dc_ticks() - t;
    *rec = (const uint8_t *)(const void *)(ev + n_events);
    return 0;
}

int dc_main(void)
{
    const dc_job_header *job = (const dc_job_header *)(uintptr_t)DC_JOB_ADDR;
    const uint8_t *base = (const uint8_t *)(uintptr_t)DC_JOB_ADDR;
    static const int64_t no_scores[SG_MAX_CLASSES];
    dc_trailer tr = {DC_RESULT_MAGIC, 0, 0, 0, 0, DC_ARENA_BYTES, 0, 0, 0, 0, 0};
    int32_t handle;
    uint32_t run;
    uint32_t g;
    uint64_t t;
    int32_t status = 0;
    const uint8_t *rec;
    if (job->magic != DC_JOB_MAGIC || job->version != DC_JOB_VERSION ||
        job->path_offset >= job->job_size || job->kind > DC_KIND_DENSE) {
        return 2;
    }
    handle = dc_host_open_write((const char *)(base + job->path_offset));
    if (handle < 0) {
        return 3;
    }
    run = job->flags & DC_FLAG_RUN;
    if ((job->flags & DC_FLAG_SYSTICK) != 0u) {
        dc_ticks_start();
    }
    tr.n_gestures = job->n_gestures;
    t = dc_ticks();
    status = (int32_t)sg_model_load(&dc_model, base + job->model_offset, job->model_size);
    if (status == 0) {
        tr.n_classes = dc_model.n_classes;
        tr.arena_bytes = (uint32_t)sg_arena_size(&dc_model);
        tr.frame_inputs = (uint32_t)sg_model_count_channels(&dc_model) * dc_model.in_h * dc_model.in_w;
        status = (int32_t)sg_runtime_init(&dc_rt, &dc_model, dc_arena, sizeof dc_arena);
    }
    tr.ticks_load = dc_ticks() - t;
    if (status == 0 && tr.frame_inputs > DC_MAX_INPUTS) {
        status = DC_ERR_SPACE;
    }
    if (status == 0 && job->kind == DC_KIND_DENSE) {
        status = dc_dense_prepare(&dc_model);
    }
    rec = base + job->data_offset;
    for (g = 0; status == 0 && g < job->n_gestures; ++g) {
        dc_gesture_result r = {0, -1, 0, 0, 0, 0, 0, 0, 0};
        if (job->kind == DC_KIND_DENSE) {
            status = dc_gesture_dense(&dc_model, &rec, run, dc_dense_logits, dc_dense_scores, &r);
            if (status == 0) {
                status = dc_emit(handle, &r, run ? dc_dense_scores : no_scores, tr.n_classes);
            }
            continue;
        }
        status = job->kind == DC_KIND_EVENTS
                     ? dc_gesture_events(&rec, run, tr.n_classes, &r)
                     : dc_gesture_frames(&rec, run, tr.frame_inputs, tr.n_classes, &r);
        if (status == 0) {
            status = dc_emit(handle, &r, run ? sg_scores(&dc_rt) : no_scores, tr.n_classes);
        }
    }
    tr.status = status;
    tr.stack_used = dc_stack_used();
    tr.stack_size = dc_stack_size();
    if (dc_host_write(handle, &tr, (uint32_t)sizeof tr) != 0) {
        status = DC_ERR_WRITE;
    }
    dc_host_close(handle);
    return status == 0 ? 0 : 1;
}
