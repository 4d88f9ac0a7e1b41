/* SPDX-License-Identifier: MIT */
/**
 * @file sg_drive.c
 * @brief Host driver for instruction counts (bench/runtime_speed.py): loads an .sgm model
 *        and a binary event file and feeds every event to the C runtime, as an event
 *        camera's driver would, in packets of @p chunk events.
 *
 * Usage: sg_drive MODEL.sgm EVENTS.bin [chunk=1024]
 *   EVENTS.bin: the events as a raw array of `sg_event` (host layout, 16 bytes each on
 *   x86-64 and aarch64), sorted by time, as pysg.runtime.as_sg_events(ev).tofile() writes.
 * The whole file is one sample (like `pysg run`): origin at the first event, T steps up
 * to the last event's step, scores from step floor(0.2 T) on.
 * Prints one line: prediction, steps, events, dropped, synops, spikes of stage 0.
 *
 * Only sg_drive_run() is measured (valgrind --tool=callgrind --toggle-collect=sg_drive_run):
 * file reading and loading are outside it. The driver uses the heap for the file
 * buffers; the runtime itself does not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_runtime.h"

static void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    void *buf = NULL;
    long n;
    if (!f) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = malloc(n > 0 ? (size_t)n : 1u); /* malloc: 16-byte aligned, as sg_model_load wants 8 */
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

/** The measured part: reset, feed every event in packets, close the last step. */
__attribute__((noinline)) sg_status sg_drive_run(sg_runtime *rt, const sg_event *ev, size_t n, size_t chunk)
{
    int64_t t0 = ev[0].t_us;
    int64_t dt = (int64_t)rt->model->dt_us;
    uint32_t steps = (uint32_t)((ev[n - 1].t_us - t0) / dt + 1);
    size_t i;
    sg_status s;
    if ((s = sg_runtime_reset(rt)) != SG_OK || (s = sg_score_from(rt, (uint32_t)(steps / 5u))) != SG_OK ||
        (s = sg_set_origin(rt, t0)) != SG_OK) {
        return s;
    }
    for (i = 0; i < n; i += chunk) {
        if ((s = sg_feed(rt, ev + i, n - i < chunk ? n - i : chunk)) != SG_OK) {
            return s;
        }
    }
    return sg_advance_to(rt, t0 + (int64_t)steps * dt);
}

int main(int argc, char **argv)
{
    size_t model_size = 0, ev_bytes = 0, n, chunk = 1024;
    void *model_buf, *ev_buf, *arena;
    sg_model m;
    sg_runtime rt;
    sg_stats st;
    sg_status s;
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.sgm EVENTS.bin [chunk]\n", argv[0]);
        return 2;
    }
    if (argc > 3) {
        chunk = (size_t)strtoul(argv[3], NULL, 10);
        if (chunk == 0) {
            chunk = 1;
        }
    }
    model_buf = read_file(argv[1], &model_size);
    ev_buf = read_file(argv[2], &ev_bytes);
    if (!model_buf || !ev_buf) {
        fprintf(stderr, "cannot read %s\n", !model_buf ? argv[1] : argv[2]);
        return 2;
    }
    n = ev_bytes / sizeof(sg_event);
    if (n == 0 || ev_bytes % sizeof(sg_event)) {
        fprintf(stderr, "%s: not an array of %u-byte sg_event records\n", argv[2], (unsigned)sizeof(sg_event));
        return 2;
    }
    if ((s = sg_model_load(&m, model_buf, model_size)) != SG_OK) {
        fprintf(stderr, "%s: %s at byte offset %u (%s)\n", argv[1], sg_status_str(s), (unsigned)m.error_offset,
                m.error_field ? m.error_field : "?");
        return 1;
    }
    arena = calloc(1, sg_arena_size(&m) + 8);
    if (!arena || (s = sg_runtime_init(&rt, &m, arena, sg_arena_size(&m))) != SG_OK) {
        fprintf(stderr, "runtime init: %s\n", arena ? sg_status_str(s) : "out of memory");
        return 1;
    }
    if ((s = sg_drive_run(&rt, (const sg_event *)ev_buf, n, chunk)) != SG_OK) {
        fprintf(stderr, "run: %s\n", sg_status_str(s));
        return 1;
    }
    sg_get_stats(&rt, &st);
    printf("prediction %d steps %llu events %llu dropped %llu synops %llu spikes0 %llu\n", sg_prediction(&rt),
           (unsigned long long)st.steps, (unsigned long long)st.events_in, (unsigned long long)st.events_dropped,
           (unsigned long long)st.synops, (unsigned long long)st.spikes[0]);
    free(arena);
    free(ev_buf);
    free(model_buf);
    return 0;
}
