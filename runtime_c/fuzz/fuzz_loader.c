/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the .sgm loader (built with -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION,
 * which skips the CRC comparison so mutations reach the field checks). If a model loads
 * (file_size must equal the input length, so no bytes are left over for events), events
 * and count frames derived from the input bytes run a few steps through sg_feed,
 * sg_advance_to and sg_step (version 2 tensor-input models: sg_step_tensor). The seed
 * corpus holds the golden version 1 files and fuzz/gen_seeds.py's version 2 and 3 files.
 */
#include <stdint.h>
#include <string.h>

#include "sg_runtime.h"

static uint64_t file_buf[(1u << 20) / 8];
static uint64_t arena_buf[(1u << 20) / 8];
static uint16_t counts[1u << 14];
static int8_t tensor[1u << 14];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_model m;
    sg_runtime rt;
    sg_event ev[32];
    size_t i;
    uint32_t n_raw;
    if (size > sizeof file_buf) {
        return 0;
    }
    memcpy(file_buf, data, size); /* 8-aligned copy, as the runtime needs */
    if (sg_model_load(&m, file_buf, size) != SG_OK) {
        (void)sg_status_str(SG_ERR_CRC);
        return 0;
    }
    if (sg_arena_size(&m) > sizeof arena_buf) {
        return 0;
    }
    if (sg_runtime_init(&rt, &m, arena_buf, sizeof arena_buf) != SG_OK) {
        __builtin_trap(); /* a loaded model must bind to a large enough arena */
    }
    for (i = 0; i < 32u; ++i) {
        const uint8_t *b = data + (i * 7u) % size;
        ev[i].t_us = (int64_t)i * (int64_t)(m.dt_us / 3u + 1u) + (int64_t)(b[0] & 3u);
        ev[i].x = (uint16_t)(b[0] % (m.sensor_w + 2u));
        ev[i].y = (uint16_t)(data[(i * 13u + 1u) % size] % (m.sensor_h + 1u));
        ev[i].p = (uint8_t)(data[(i * 5u + 2u) % size] & 1u);
    }
    (void)sg_feed(&rt, ev, 32);
    (void)sg_advance_to(&rt, ev[31].t_us + (int64_t)m.dt_us);
    n_raw = (uint32_t)m.in_c * m.in_h * m.in_w;
    if (n_raw <= sizeof counts / sizeof counts[0]) {
        for (i = 0; i < n_raw; ++i) {
            counts[i] = data[i % size];
        }
        for (i = 0; i < 3u; ++i) {
            (void)sg_step(&rt, counts);
        }
        /* version 2 tensor-input models take the int8 tensor (in_h x in_w x in_c) instead */
        for (i = 0; i < 3u; ++i) {
            size_t k;
            for (k = 0; k < n_raw; ++k) {
                tensor[k] = (int8_t)data[(k * 3u + i) % size];
            }
            (void)sg_step_tensor(&rt, tensor);
        }
    }
    (void)sg_prediction(&rt);
    return 0;
}
