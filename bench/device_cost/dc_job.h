/* SPDX-License-Identifier: MIT */
/**
 * @file dc_job.h
 * @brief Layout of the device-cost job (host -> device, placed in RAM by QEMU's loader
 *        device) and of the result file (device -> host, through semihosting). Written
 *        and read by bench/device_cost.py; all fields little-endian.
 *
 * Job, at DC_JOB_ADDR (0x21000000):
 *   u32 words: magic "SGDC", version 1, flags (DC_FLAG_*), kind (DC_KIND_*), model_offset,
 *   model_size, n_gestures, data_offset, job_size, path_offset (NUL-terminated host path
 *   of the result file). The model starts 8-byte aligned (sg_model_load's requirement).
 *   At data_offset, one record per gesture, starting with u32 n_steps, u32 score_from
 *   (first step summed into the scores), then
 *   - DC_KIND_FRAMES (sg_step): per step u16 nnz and nnz pairs of u16 (input index, count)
 *     of that step's frame (in_c x in_h x in_w, channel-major as sg_step takes it), then
 *     zero padding to 4 bytes;
 *   - DC_KIND_EVENTS (sg_feed): u32 n_events, u32 0, then n_events dc_event_rec (time in
 *     µs from the gesture's start, which is the runtime's origin);
 *   - DC_KIND_DENSE (dc_dense.c, version 2 models): n_steps int8 input tensors (NHWC), one
 *     per frame, then zero padding to 4 bytes (score_from unused: every frame is scored).
 *
 * Result file: one dc_gesture_result per gesture (each followed by n_classes int64
 * scores), then one dc_trailer. A baseline job (no DC_FLAG_RUN) writes the same number
 * of bytes with zero results: the work outside the runtime is identical in both.
 */
#ifndef DC_JOB_H
#define DC_JOB_H

#include <stdint.h>

#define DC_JOB_ADDR 0x21000000u
#define DC_JOB_MAGIC 0x43444753u    /* "SGDC" */
#define DC_RESULT_MAGIC 0x52444753u /* "SGDR" */
#define DC_JOB_VERSION 1u
#define DC_FLAG_RUN 1u     /* call the runtime (else: the baseline, zero steps) */
#define DC_FLAG_SYSTICK 2u /* run SysTick (only with -icount: its interrupts are timed) */
#define DC_KIND_FRAMES 0u  /* dense frames through sg_step */
#define DC_KIND_EVENTS 1u  /* events in packets through sg_feed, then sg_advance_to */
#define DC_KIND_DENSE 2u   /* version 2 model: int8 input tensors through the dense kernels */
#define DC_FNV_PRIME 0x01000193u /* the logits hash */
#define DC_FNV_BASIS 0x811C9DC5u

/** One input event of a DC_KIND_EVENTS job (8 bytes). */
typedef struct dc_event_rec {
    uint32_t t_us;
    uint8_t x, y, p, reserved;
} dc_event_rec;

typedef struct dc_job_header {
    uint32_t magic, version, flags, kind;
    uint32_t model_offset, model_size;
    uint32_t n_gestures, data_offset, job_size, path_offset;
} dc_job_header;

typedef struct dc_gesture_result {
    uint32_t steps;      /* steps run */
    int32_t prediction;  /* sg_prediction at the end of the gesture */
    uint32_t logit_hash; /* FNV-1a-style hash of every step's logits in order (frames),
                            or of the last step's logits (events) */
    uint32_t reserved;
    uint64_t synops, events_in, events_dropped, spikes0; /* sg_stats */
    uint64_t ticks; /* SysTick ticks over the gesture (0 without DC_FLAG_SYSTICK) */
} dc_gesture_result;

typedef struct dc_trailer {
    uint32_t magic;
    int32_t status; /* 0 or the first failing sg_status / DC_ERR_* */
    uint32_t n_gestures, n_classes;
    uint32_t arena_bytes;    /* sg_arena_size of the model */
    uint32_t arena_capacity; /* the static arena compiled in */
    uint32_t stack_used, stack_size;
    uint32_t frame_inputs;
    uint32_t reserved;
    uint64_t ticks_load; /* SysTick ticks of sg_model_load + sg_runtime_init */
} dc_trailer;

#define DC_ERR_JOB (-100)   /* bad job header */
#define DC_ERR_FRAME (-101) /* a frame index out of range */
#define DC_ERR_SPACE (-102) /* model input larger than the compiled frame buffer */
#define DC_ERR_WRITE (-103) /* semihosting write failed */

#endif /* DC_JOB_H */
