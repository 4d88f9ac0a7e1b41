/* SPDX-License-Identifier: MIT */
/*
 * C unit tests of the runtime: hand-computed arithmetic (FORMAT.md §3 and §6), golden
 * vectors from pysg.intref (bit-exact, through sg_step and through sg_feed), loader
 * rejection (truncation, bit flips, re-signed mutations against pysg.sgm offsets),
 * arena and API errors. Usage: test_runtime GOLDEN_DIR (from gen_golden.py).
 *
 * Longer than ~500 lines on purpose: one test program of one unit (the gamma engine and its
 * loader), built and run on four targets (host, ASan, aarch64 under qemu-user, Cortex-M4
 * under QEMU; runtime_c/Makefile), its cases sharing the static file and arena buffers
 * below. Split in parts, each part would need its own rule on every target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/engines/gamma/sg_gamma.h" /* the kernels and sg_decay under test */
#include "sg_runtime.h"
#include "test_files.h"

#define MAX_FILE (1u << 16)
#define ARENA_WORDS (1u << 16)

static const char *dir;

static uint64_t file_buf[MAX_FILE / 8];
static uint64_t work_buf[MAX_FILE / 8 + 1];
static uint64_t arena_buf[ARENA_WORDS];
static sg_model model;
static sg_runtime rt;

static size_t read_file(const char *name, void *dst, size_t cap)
{
    char path[1024];
    FILE *f;
    size_t n;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    n = fread(dst, 1, cap, f);
    fclose(f);
    return n;
}

static void *read_alloc(const char *name, size_t *size)
{
    return sg_test_read_alloc(dir, name, size);
}

/* ------------------------------------------------------------ arithmetic by hand */

static void test_decay_by_hand(void)
{
    CHECK(sg_decay(3, 16384, 0) == 2, "1.5 -> 2");
    CHECK(sg_decay(-3, 16384, 0) == -1, "-1.5 -> -1");
    CHECK(sg_decay(100, 16384, 250) == 175, "175");
    CHECK(sg_decay(50, 16384, 250) == 150, "150");
    CHECK(sg_decay(7, 0, 0) == 0, "alpha 0");
    CHECK(sg_decay(5, 30000, 5) == 5, "at target");
    CHECK(sg_decay(1, 29491, 0) == 0 && sg_decay(-1, 29491, 0) == 0, "progress rule to 0");
    CHECK(sg_decay(10, 32767, 0) == 9 && sg_decay(-10, 32767, 0) == -9, "progress 32767");
    CHECK(sg_decay(3, 32000, 7) == 4, "one unit towards the target");
    CHECK(sg_decay(INT32_MAX, 32767, INT32_MIN) == INT32_MAX - (1 << 17), "extreme 1");
    CHECK(sg_decay(INT32_MIN, 1, INT32_MAX) == INT32_MAX - (1 << 17), "extreme 2");
    CHECK(sg_decay(INT32_MIN, 0, INT32_MAX) == INT32_MAX, "extreme 3");
    CHECK(sg_decay(0, 12345, 0) == 0, "zero is a fixed point");
    CHECK(sg_asr64(-5, 1) == -3 && sg_asr64(5, 1) == 2 && sg_asr64(-1, 62) == -1, "asr64");
    CHECK(sg_sat32((int64_t)1 << 40) == INT32_MAX && sg_sat32(-((int64_t)1 << 40)) == INT32_MIN,
          "sat32");
    {
        /* every tap decays to exactly zero (tests/test_intref.py) */
        static const uint16_t a[] = {0, 1, 16384, 19875, 29650, 32000, 32767, 32767, 30000};
        static const int64_t z0[] = {INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, INT32_MAX,
                                     INT32_MIN, 1000,      -1,        1};
        const int sgn[4] = {1, -1, 1, 1};
        int32_t z[4][9];
        int i, k, steps = 0, any = 1;
        for (k = 0; k < 4; ++k) {
            for (i = 0; i < 9; ++i) {
                int64_t v = z0[i] * sgn[k];
                z[k][i] = sg_sat32(v);
            }
        }
        while (any && steps < 20000) {
            any = 0;
            for (i = 0; i < 9; ++i) {
                for (k = 3; k >= 1; --k) {
                    z[k][i] = sg_decay(z[k][i], a[i], z[k - 1][i]);
                }
                z[0][i] = sg_decay(z[0][i], a[i], 0);
                for (k = 0; k < 4; ++k) {
                    any |= z[k][i] != 0;
                }
            }
            ++steps;
        }
        CHECK(!any, "taps reach 0 (after %d steps)", steps);
    }
    {
        /* bucket-0 scatter wraps (uint32 add), dense and conv */
        static const int8_t w[4] = {5, -7, 127, -127};
        int32_t z[4] = {INT32_MAX - 2, INT32_MIN + 3, 0, 0};
        sg_stage st;
        memset(&st, 0, sizeof st);
        st.kind = 1;
        st.out_c = 2;
        st.out_h = st.out_w = 1;
        st.n_in = 2;
        st.n_out = 2;
        st.syn_c = 2;
        st.syn_h = st.syn_w = 1;
        st.weights = w; /* [j][i]: w[0], w[1] for j = 0; w[2], w[3] for j = 1 */
        CHECK(sg_scatter(&st, 0, 1, z) == 2 && z[0] == INT32_MIN + 2 && z[1] == INT32_MIN + 3 + 127,
              "dense wrap: %d %d", (int)z[0], (int)z[1]);
        z[0] = 0;
        z[1] = INT32_MIN + 3;
        (void)sg_scatter(&st, 1, 1, z);
        CHECK(z[1] == INT32_MAX - 123, "dense negative wrap: %d", (int)z[1]);
        z[0] = 0;
        (void)sg_scatter(&st, 0, -1, z); /* a wrapped (negative) ring count */
        CHECK(z[0] == -5, "negative count");
        CHECK(sg_fanout(&st, 1) == 2, "dense fanout");
        st.kind = 2; /* 1 channel 3x3 -> 1 channel 2x2 output, kernel 2, stride 1, no padding */
        st.out_c = 1;
        st.out_h = st.out_w = 2;
        st.syn_c = 1;
        st.syn_h = st.syn_w = 3;
        st.n_in = 9;
        st.n_out = 4;
        st.kernel = 2;
        st.stride = 1;
        z[0] = z[1] = z[2] = 0;
        z[3] = INT32_MAX;
        CHECK(sg_scatter(&st, 4, 1, z) == 4 && sg_fanout(&st, 4) == 4, "conv center taps");
        /* input (1,1) reaches output (R,Q) through tap (1-R, 1-Q): w[3], w[2], w[1], w[0] */
        CHECK(z[0] == -127 && z[1] == 127 && z[2] == -7 && z[3] == INT32_MIN + 4,
              "conv scatter/wrap: %d %d %d %d", (int)z[0], (int)z[1], (int)z[2], (int)z[3]);
        CHECK(sg_fanout(&st, 0) == 1 && sg_fanout(&st, 8) == 1 && sg_fanout(&st, 1) == 2,
              "conv fanout");
    }
    {
        const uint8_t s[] = "123456789";
        CHECK(sg_crc32(0, s, 9) == 0xCBF43926u, "CRC-32 check value");
    }
}

static sg_status load(const char *name, size_t *size)
{
    *size = read_file(name, file_buf, sizeof file_buf);
    return sg_model_load(&model, file_buf, *size);
}

/* ------------------------------------------------------------ FORMAT.md §6 */

static void test_worked_example(void)
{
    size_t n;
    const uint16_t c[3] = {1, 2, 0};
    const int32_t want[3] = {-1, 6, 5};
    const uint64_t spikes[3] = {0, 1, 0};
    const uint64_t synops[3] = {1, 3, 0};
    uint64_t prev_sp = 0, prev_so = 0;
    int t;
    sg_stats st;
    CHECK(load("hand.sgm", &n) == SG_OK, "hand.sgm loads");
    CHECK(sg_arena_size(&model) == 4u * (2 + 1 + 2), "hand arena %u",
          (unsigned)sg_arena_size(&model));
    CHECK(strcmp(sg_model_label(&model, 0), "only") == 0, "label");
    CHECK(sg_model_label(&model, 1) == NULL, "label out of range");
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf) == SG_OK, "init");
    CHECK(sg_prediction(&rt) == -1, "no prediction before a step");
    for (t = 0; t < 3; ++t) {
        CHECK(sg_step(&rt, &c[t]) == SG_OK, "step");
        sg_get_stats(&rt, &st);
        CHECK(sg_logits(&rt)[0] == want[t], "hand logit step %d: %d != %d", t,
              (int)sg_logits(&rt)[0], (int)want[t]);
        CHECK(st.spikes[0] - prev_sp == spikes[t], "hand spikes step %d", t);
        CHECK(st.synops - prev_so == synops[t], "hand synops step %d: %llu", t,
              (unsigned long long)(st.synops - prev_so));
        prev_sp = st.spikes[0];
        prev_so = st.synops;
    }
    CHECK(sg_prediction(&rt) == 0, "prediction");
    /* same through events: 1 event in step 0, 2 in step 1, none in step 2 */
    {
        sg_event ev[3];
        memset(ev, 0, sizeof ev);
        ev[0].t_us = 5000;
        ev[1].t_us = 6000;
        ev[2].t_us = 6999;
        ev[1].p = 1;
        sg_runtime_reset(&rt);
        CHECK(sg_advance_to(&rt, 100) == SG_ERR_TIME, "advance without origin");
        CHECK(sg_feed(&rt, ev, 1) == SG_OK, "feed 1");
        CHECK(sg_feed(&rt, ev + 1, 2) == SG_OK, "feed 2");
        CHECK(rt.stats.steps == 1 && sg_logits(&rt)[0] == -1, "step 0 via events");
        CHECK(sg_advance_to(&rt, 7999) == SG_OK && rt.stats.steps == 2 && sg_logits(&rt)[0] == 6,
              "step 1 via events");
        CHECK(sg_advance_to(&rt, 8000) == SG_OK && rt.stats.steps == 3 && sg_logits(&rt)[0] == 5,
              "step 2 via events");
        CHECK(sg_feed(&rt, ev, 1) == SG_ERR_TIME, "event in a completed step");
        CHECK(sg_set_origin(&rt, 0) == SG_ERR_TIME, "origin set twice");
    }
    /* time base at the int64 limits: errors, never overflow (UBSan) */
    {
        sg_event e1;
        memset(&e1, 0, sizeof e1);
        sg_runtime_reset(&rt);
        CHECK(sg_set_origin(&rt, INT64_MIN) == SG_OK, "origin at INT64_MIN");
        e1.t_us = INT64_MAX;
        CHECK(sg_feed(&rt, &e1, 1) == SG_ERR_TIME, "step index beyond 2^32");
        CHECK(sg_advance_to(&rt, INT64_MAX) == SG_ERR_TIME, "advance beyond 2^32 steps");
        CHECK(sg_advance_to(&rt, INT64_MIN + 2500) == SG_OK && rt.stats.steps == 2,
              "advance near INT64_MIN");
        sg_runtime_reset(&rt);
        sg_step(&rt, NULL);
        sg_step(&rt, NULL);
        e1.t_us = INT64_MIN + 10; /* origin = t - 2 dt would underflow */
        CHECK(sg_feed(&rt, &e1, 1) == SG_ERR_TIME, "implicit origin underflow");
        e1.t_us = 100000; /* origin 98000: the event opens step 2 */
        CHECK(sg_feed(&rt, &e1, 1) == SG_OK && rt.t0_us == 98000 && rt.step == 2,
              "implicit origin after sg_step");
        e1.t_us = 97999;
        CHECK(sg_feed(&rt, &e1, 1) == SG_ERR_TIME, "event before the origin");
        e1.t_us = 100500;
        e1.x = 1;
        CHECK(sg_feed(&rt, &e1, 1) == SG_OK && rt.stats.events_dropped == 1,
              "x outside the sensor");
        e1.x = 0;
        e1.p = 2;
        CHECK(sg_feed(&rt, &e1, 1) == SG_OK && rt.stats.events_dropped == 2, "polarity 2 dropped");
        CHECK(rt.stats.events_in == 1, "events in");
    }
    /* after input stops every state returns to exactly zero */
    {
        const uint16_t fifty = 50;
        size_t i;
        int zero = 1;
        sg_runtime_reset(&rt);
        sg_step(&rt, &fifty);
        for (t = 0; t < 200; ++t) {
            sg_step(&rt, NULL);
        }
        for (i = 0; i < sg_arena_used(&rt); ++i) {
            zero &= rt.arena[i] == 0;
        }
        CHECK(zero, "state all zero after 200 idle steps");
    }
    {
        const uint16_t c4[4] = {1, 2, 0, 0};
        const int32_t w4[4] = {INT32_MAX - 2, INT32_MAX, INT32_MAX, INT32_MAX};
        CHECK(load("hand_sat.sgm", &n) == SG_OK, "hand_sat loads");
        sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf);
        for (t = 0; t < 4; ++t) {
            sg_step(&rt, &c4[t]);
            CHECK(sg_logits(&rt)[0] == w4[t], "saturating logit step %d", t);
        }
    }
}

/* ------------------------------------------------------------ golden vectors */

typedef struct golden {
    int64_t t_steps, origin, n_events, n_raw, n_classes, n_hidden;
    const int64_t *events;
    const uint16_t *frames;
    const int32_t *logits;
    const uint8_t *spikes; /* int64, not necessarily 8-aligned in the file: read_i64 */
    const uint8_t *synops;
} golden;

static int64_t read_i64(const uint8_t *base, int64_t index)
{
    int64_t v;
    memcpy(&v, base + 8 * index, sizeof v);
    return v;
}

static int compare_step(const char *name, const char *path, int64_t t, const golden *g,
                        uint64_t *prev_spikes, uint64_t *prev_synops)
{
    int64_t c;
    int64_t l;
    const int32_t *got = sg_logits(&rt);
    for (c = 0; c < g->n_classes; ++c) {
        const int32_t want = g->logits[t * g->n_classes + c];
        if (got[c] != want) {
            CHECK(0, "%s (%s): first difference at step %lld class %lld: got %d, want %d", name,
                  path, (long long)t, (long long)c, (int)got[c], (int)want);
            return 1;
        }
    }
    for (l = 0; l < g->n_hidden; ++l) {
        const uint64_t d = rt.stats.spikes[l] - prev_spikes[l];
        const int64_t want = read_i64(g->spikes, t * g->n_hidden + l);
        if ((int64_t)d != want) {
            CHECK(0, "%s (%s): step %lld stage %lld spikes %llu, want %lld", name, path,
                  (long long)t, (long long)l, (unsigned long long)d, (long long)want);
            return 1;
        }
        prev_spikes[l] = rt.stats.spikes[l];
    }
    if ((int64_t)(rt.stats.synops - *prev_synops) != read_i64(g->synops, t)) {
        CHECK(0, "%s (%s): step %lld synops %llu, want %lld", name, path, (long long)t,
              (unsigned long long)(rt.stats.synops - *prev_synops),
              (long long)read_i64(g->synops, t));
        return 1;
    }
    *prev_synops = rt.stats.synops;
    ++checks;
    return 0;
}

/* The public queries agree with the loaded views (the Python side reads only these). */
static void test_queries(const char *name)
{
    sg_layer_info info;
    uint16_t l;
    CHECK(sg_model_kind(&model) == SG_FORMAT_VERSION, "%s: kind", name);
    CHECK(sg_model_window(&model) == 1u, "%s: window", name);
    CHECK(sg_model_count_channels(&model) == model.in_c, "%s: count channels", name);
    CHECK(sg_model_n_layers(&model) == model.n_stages, "%s: layers", name);
    for (l = 0; l < model.n_stages; ++l) {
        const sg_stage *st = &model.net.gamma.stages[l];
        const uint64_t fan_in = st->kind == SG_KIND_DENSE
                                    ? (uint64_t)st->n_in
                                    : (uint64_t)st->syn_c * st->kernel * st->kernel;
        CHECK(sg_model_layer(&model, l, &info) == SG_OK && info.kind == st->kind &&
                  info.n_out == st->n_out && info.fan_in == fan_in &&
                  info.flags == (l + 1u == model.n_stages ? SG_FLAG_OUTPUT : 0u),
              "%s: layer %u info", name, (unsigned)l);
    }
    CHECK(sg_model_layer(&model, model.n_stages, &info) == SG_ERR_ARG, "%s: layer past the end",
          name);
    CHECK(sg_model_layer(&model, 0, NULL) == SG_ERR_ARG, "%s: NULL info", name);
    CHECK(sg_step_index(&rt) == rt.step, "%s: step index", name);
    CHECK(sg_scores(&rt) == rt.score && sg_logits(&rt) == rt.logits, "%s: readouts", name);
}

static void test_golden(const char *name)
{
    char fn[2048];
    size_t n, case_size;
    uint8_t *raw;
    golden g;
    const int64_t *h;
    uint64_t prev[SG_MAX_STAGES];
    uint64_t prev_so = 0;
    int64_t t;
    size_t e = 0;
    int64_t warm;
    int best = 0;
    int64_t score[SG_MAX_CLASSES];
    int64_t c;

    snprintf(fn, sizeof fn, "%s.sgm", name);
    {
        sg_status st = load(fn, &n);
        CHECK(st == SG_OK, "%s loads: %s at %u (%s)", name, sg_status_str(st),
              (unsigned)model.error_offset, model.error_field);
    }
    snprintf(fn, sizeof fn, "%s.case", name);
    raw = read_alloc(fn, &case_size);
    h = (const int64_t *)(const void *)raw;
    g.t_steps = h[1];
    g.origin = h[2];
    g.n_events = h[3];
    g.n_raw = h[4];
    g.n_classes = h[5];
    g.n_hidden = h[6];
    g.events = h + 8;
    g.frames = (const uint16_t *)(const void *)(g.events + 4 * g.n_events);
    g.logits = (const int32_t *)(const void *)(g.frames + g.t_steps * g.n_raw);
    g.spikes = (const uint8_t *)(g.logits + g.t_steps * g.n_classes);
    g.synops = g.spikes + 8 * g.t_steps * g.n_hidden;
    CHECK(g.n_classes == model.n_classes, "classes");
    { /* the patch conv kernels (stride = kernel, padding 0) are chosen at load time */
        uint32_t l;
        for (l = 0; l < model.n_stages; ++l) {
            const sg_stage *s = &model.net.gamma.stages[l];
#if defined(SG_NO_PATCH)
            const int patch = 0;
#else
            const int patch =
                s->kind == SG_KIND_CONV2D && s->stride == s->kernel && s->padding == 0u;
#endif
            CHECK(((s->flags & SG_FLAG_PATCH) != 0u) == patch, "%s: stage %u patch flag", name,
                  (unsigned)l);
        }
    }
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf) == SG_OK, "init");
    CHECK(sg_arena_used(&rt) == sg_arena_size(&model), "arena used");

    /* grain 2: dense frames through sg_step */
    memset(prev, 0, sizeof prev);
    prev_so = 0;
    for (t = 0; t < g.t_steps; ++t) {
        sg_step(&rt, g.frames + t * g.n_raw);
        if (compare_step(name, "sg_step", t, &g, prev, &prev_so)) {
            break;
        }
    }

    /* events through sg_feed with an explicit origin, one sg_advance_to per step */
    sg_runtime_reset(&rt);
    warm = g.t_steps / 5; /* floor(0.2 T) */
    sg_score_from(&rt, (uint32_t)warm);
    CHECK(sg_set_origin(&rt, g.origin) == SG_OK, "origin");
    memset(prev, 0, sizeof prev);
    prev_so = 0;
    memset(score, 0, sizeof score);
    for (t = 0; t < g.t_steps; ++t) {
        const int64_t end = g.origin + (t + 1) * (int64_t)model.dt_us;
        size_t start = e;
        sg_event buf[64];
        size_t k = 0;
        while (e < (size_t)g.n_events && g.events[4 * e] < end) {
            buf[k].t_us = g.events[4 * e];
            buf[k].x = (uint16_t)g.events[4 * e + 1];
            buf[k].y = (uint16_t)g.events[4 * e + 2];
            buf[k].p = (uint8_t)g.events[4 * e + 3];
            ++k;
            ++e;
            if (k == 64) {
                CHECK(sg_feed(&rt, buf, k) == SG_OK, "feed");
                k = 0;
            }
        }
        CHECK(sg_feed(&rt, buf, k) == SG_OK, "feed");
        (void)start;
        CHECK(sg_advance_to(&rt, end) == SG_OK, "advance");
        if (rt.stats.steps != (uint64_t)t + 1u) {
            CHECK(0, "%s: %llu steps after advance to step %lld", name,
                  (unsigned long long)rt.stats.steps, (long long)t);
            break;
        }
        if (compare_step(name, "sg_feed", t, &g, prev, &prev_so)) {
            break;
        }
        for (c = 0; c < g.n_classes; ++c) {
            if (t >= warm) {
                score[c] += g.logits[t * g.n_classes + c];
            }
        }
    }
    CHECK(rt.stats.events_in + rt.stats.events_dropped == (uint64_t)g.n_events,
          "%s: events in %llu + dropped %llu != %lld", name, (unsigned long long)rt.stats.events_in,
          (unsigned long long)rt.stats.events_dropped, (long long)g.n_events);
    for (c = 1; c < g.n_classes; ++c) {
        if (score[c] > score[best]) {
            best = (int)c;
        }
    }
    CHECK(sg_prediction(&rt) == best, "%s: prediction %d, want %d", name, sg_prediction(&rt), best);

    /* one step from both inputs: its first half of events through sg_feed, the rest binned
     * here and added by sg_step (an input's count is the sum of the two: stage 0's gate
     * must see it whole) */
    sg_runtime_reset(&rt);
    CHECK(sg_set_origin(&rt, g.origin) == SG_OK, "origin");
    memset(prev, 0, sizeof prev);
    prev_so = 0;
    e = 0;
    for (t = 0; t < g.t_steps; ++t) {
        static uint16_t rest[8192];
        const int64_t end = g.origin + (t + 1) * (int64_t)model.dt_us;
        size_t first = e;
        size_t half;
        size_t k = 0;
        sg_event buf[64];
        CHECK(g.n_raw <= 8192, "%s: %lld raw inputs", name, (long long)g.n_raw);
        while (e < (size_t)g.n_events && g.events[4 * e] < end) {
            ++e;
        }
        half = first + (e - first) / 2u;
        for (; first < half; ++first) {
            buf[k].t_us = g.events[4 * first];
            buf[k].x = (uint16_t)g.events[4 * first + 1];
            buf[k].y = (uint16_t)g.events[4 * first + 2];
            buf[k].p = (uint8_t)g.events[4 * first + 3];
            if (++k == 64) {
                CHECK(sg_feed(&rt, buf, k) == SG_OK, "feed");
                k = 0;
            }
        }
        CHECK(sg_feed(&rt, buf, k) == SG_OK, "feed");
        memset(rest, 0, sizeof rest);
        for (; half < e; ++half) { /* the sensor -> input mapping of FORMAT.md §3 step 2 */
            const int64_t x = g.events[4 * half + 1];
            const int64_t y = g.events[4 * half + 2];
            const int64_t pol = g.events[4 * half + 3];
            if (x < model.sensor_w && y < model.sensor_h && pol <= 1) {
                const int64_t ch = model.in_c == 2u ? pol : 0;
                rest[(ch * model.in_h + y / model.downsample) * model.in_w + x / model.downsample]++;
            }
        }
        sg_step(&rt, rest);
        if (compare_step(name, "sg_feed + sg_step", t, &g, prev, &prev_so)) {
            break;
        }
    }
    test_queries(name);
    free(raw);
}

/* ------------------------------------------------------------ loader rejection */

/* A loaded model must run: a few steps with some input. */
static void smoke_run(void)
{
    static uint16_t counts[4096];
    uint32_t n_raw = (uint32_t)model.in_c * model.in_h * model.in_w;
    uint32_t i;
    int t;
    if (sg_arena_size(&model) > sizeof arena_buf || n_raw > 4096u) {
        return;
    }
    for (i = 0; i < n_raw; ++i) {
        counts[i] = (uint16_t)(i % 3u);
    }
    if (sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf) != SG_OK) {
        CHECK(0, "init of a loaded model failed");
        return;
    }
    for (t = 0; t < 3; ++t) {
        sg_step(&rt, counts);
    }
}

static void test_rejects(const char *name)
{
    char fn[2048];
    size_t n, i, rn;
    uint8_t *w = (uint8_t *)work_buf;
    const uint8_t *orig = (const uint8_t *)file_buf;
    uint8_t *rec;
    int bad = 0;

    snprintf(fn, sizeof fn, "%s.sgm", name);
    CHECK(load(fn, &n) == SG_OK, "load");
    /* truncated at every offset */
    for (i = 0; i < n; ++i) {
        sg_status st = sg_model_load(&model, orig, i);
        if (i < 64u) {
            bad += st != SG_ERR_TRUNCATED || model.error_offset != i;
        } else {
            bad += st != SG_ERR_TRUNCATED || model.error_offset != 12u;
        }
    }
    CHECK(bad == 0, "%s: %d truncations not reported as SG_ERR_TRUNCATED", name, bad);
    /* one bit flipped in every byte: always rejected */
    bad = 0;
    for (i = 0; i < n; ++i) {
        memcpy(w, orig, n);
        w[i] ^= (uint8_t)(1u << (i % 8u));
        bad += sg_model_load(&model, w, n) == SG_OK;
    }
    CHECK(bad == 0, "%s: %d bit flips accepted", name, bad);
    /* the same flips re-signed: rejected or runnable, never a crash */
    for (i = 0; i < n; ++i) {
        memcpy(w, orig, n);
        w[i] ^= (uint8_t)(1u << (i % 8u));
        resign_buf(w, n);
        if (sg_model_load(&model, w, n) == SG_OK) {
            smoke_run();
        }
    }
    /* random mutations: same verdict and offset as pysg.sgm.load_sgm */
    snprintf(fn, sizeof fn, "%s.rej", name);
    rec = read_alloc(fn, &rn);
    bad = 0;
    for (i = 0; i + 16u <= rn; i += 16u) {
        uint32_t pos;
        int64_t want;
        sg_status st;
        memcpy(&pos, rec + i, 4);
        memcpy(&want, rec + i + 8, 8);
        memcpy(w, orig, n);
        w[pos] = rec[i + 4];
        if (rec[i + 5]) {
            resign_buf(w, n);
        }
        st = sg_model_load(&model, w, n);
        if ((want < 0) != (st == SG_OK) || (want >= 0 && (int64_t)model.error_offset != want)) {
            if (bad++ < 5) {
                fprintf(stderr, "%s: byte %u := %u%s: C %s at %u (%s), Python offset %lld\n", name,
                        (unsigned)pos, rec[i + 4], rec[i + 5] ? " (re-signed)" : "",
                        sg_status_str(st), (unsigned)model.error_offset, model.error_field,
                        (long long)want);
            }
        }
        if (st == SG_OK) {
            smoke_run();
        }
    }
    CHECK(bad == 0, "%s: %d mutations judged differently from pysg.sgm", name, bad);
    free(rec);
    /* arena too small, misaligned arena, misaligned model */
    snprintf(fn, sizeof fn, "%s.sgm", name);
    CHECK(load(fn, &n) == SG_OK, "reload");
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sg_arena_size(&model) - 1u) == SG_ERR_ARENA,
          "arena too small");
    CHECK(sg_runtime_init(&rt, &model, (uint8_t *)arena_buf + 2, sizeof arena_buf - 8u) ==
              SG_ERR_ARG,
          "misaligned arena");
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sg_arena_size(&model)) == SG_OK, "exact arena");
    memcpy(w + 1, orig, n);
    CHECK(sg_model_load(&model, w + 1, n) == SG_OK, "misaligned file validates");
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf) == SG_ERR_ARG,
          "misaligned file cannot run");
}

static void test_api_errors(void)
{
    int s;
    CHECK(sg_model_load(NULL, file_buf, 64) == SG_ERR_ARG, "NULL model");
    CHECK(sg_model_load(&model, NULL, 64) == SG_ERR_ARG, "NULL data");
    CHECK(sg_runtime_init(NULL, &model, arena_buf, 8) == SG_ERR_ARG, "NULL rt");
    CHECK(sg_feed(NULL, NULL, 0) == SG_ERR_ARG, "NULL feed");
    CHECK(sg_get_stats(NULL, NULL) == SG_ERR_ARG, "NULL stats");
    CHECK(sg_model_kind(NULL) == 0u && sg_model_window(NULL) == 0u &&
              sg_model_n_layers(NULL) == 0u && sg_model_count_channels(NULL) == 0u,
          "NULL model queries");
    CHECK(sg_model_layer(NULL, 0, NULL) == SG_ERR_ARG, "NULL layer query");
    CHECK(sg_step_index(NULL) == 0u && sg_scores(NULL) == NULL && sg_logits(NULL) == NULL,
          "NULL runtime readouts");
    CHECK(sg_model_load(&model, file_buf, 8) == SG_ERR_TRUNCATED && sg_model_kind(&model) == 0u &&
              sg_model_count_channels(&model) == 0u,
          "a failed load has no kind");
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf) == SG_ERR_ARG,
          "a failed load cannot run");
    for (s = 1; s >= -14; --s) {
        CHECK(sg_status_str((sg_status)s) != NULL, "status string");
    }
}

int main(int argc, char **argv)
{
    char names[16][64];
    int n_names = 0, i;
    char list[1024];
    size_t len;
    char *p;
    if (argc < 2) {
        fprintf(stderr, "usage: %s GOLDEN_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    test_decay_by_hand();
    test_worked_example();
    test_api_errors();
    len = read_file("cases.txt", list, sizeof list - 1u);
    list[len] = 0;
    for (p = strtok(list, "\n"); p != NULL && n_names < 16; p = strtok(NULL, "\n")) {
        snprintf(names[n_names++], 64, "%s", p);
    }
    for (i = 0; i < n_names; ++i) {
        test_golden(names[i]);
        test_rejects(names[i]);
    }
    test_rejects("hand");
    printf("%d checks, %d failures (%d golden cases)\n", checks, failures, n_names);
    return failures == 0 ? 0 : 1;
}
