/* SPDX-License-Identifier: MIT */
/*
 * C tests of version 3 models (layered spiking networks, NIR's; FORMAT.md §11-15): golden
 * logits and statistics of every step from gen_snn_golden.py (pysg.engines.snn.SnnRef,
 * the definition of the arithmetic) through sg_step (count frames) and through sg_feed +
 * sg_advance_to (the same counts as events); scores and prediction; reset; API refusals;
 * the loader's rejection of every truncation and of re-signed byte corruptions without a
 * crash (a loaded mutation must bind and step).
 * Usage: test_snn GOLDEN_DIR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_format.h"
#include "sg_runtime.h"
#include "test_files.h"

#define MAX_FILE (1u << 14)
#define ARENA_WORDS (1u << 12)
#define MAX_EVENTS 4096u
#define MAX_ENTRIES 16u

static const char *dir;

static uint64_t file_buf[MAX_FILE / 8];
static uint64_t work_buf[MAX_FILE / 8];
static uint64_t arena_buf[ARENA_WORDS];
static sg_event events[MAX_EVENTS];
static sg_model model;
static sg_runtime rt;

typedef struct scase {
    char name[32];
    unsigned steps, n_in, n_classes, n_entries;
} scase;

/* The golden data of one case: counts, logits, per-step statistics. */
typedef struct golden {
    const uint16_t *in;    /* [steps][n_in] */
    const int32_t *out;    /* [steps][n_classes] */
    const uint32_t *stats; /* [steps][1 + n_entries]: synops, then nonzero activations per entry */
} golden;

static int logits_ok(const scase *c, const golden *g, unsigned t, const char *how)
{
    const int32_t *got = sg_logits(&rt);
    unsigned j;
    for (j = 0; j < c->n_classes; ++j) {
        if (got[j] != g->out[(size_t)t * c->n_classes + j]) {
            CHECK(0, "%s %s step %u class %u: %ld != golden %ld", c->name, how, t, j, (long)got[j],
                  (long)g->out[(size_t)t * c->n_classes + j]);
            return 0;
        }
    }
    ++checks;
    return 1;
}

/* The counters after step t: sums of the golden per-step statistics. */
static void check_stats(const scase *c, const golden *g, unsigned t, const char *how)
{
    sg_stats st;
    unsigned long long want[1 + MAX_ENTRIES];
    unsigned k;
    unsigned s;
    memset(want, 0, sizeof want);
    for (s = 0; s <= t; ++s) {
        for (k = 0; k <= c->n_entries; ++k) {
            want[k] += g->stats[(size_t)s * (1u + c->n_entries) + k];
        }
    }
    CHECK(sg_get_stats(&rt, &st) == SG_OK, "stats");
    CHECK(st.steps == t + 1u, "%s %s: %llu steps", c->name, how, (unsigned long long)st.steps);
    CHECK(st.synops == want[0], "%s %s step %u: synops %llu != %llu", c->name, how, t,
          (unsigned long long)st.synops, want[0]);
    for (k = 0; k < c->n_entries; ++k) {
        CHECK(st.spikes[k] == want[1u + k], "%s %s step %u: entry %u %llu spikes, golden %llu",
              c->name, how, t, k, (unsigned long long)st.spikes[k], want[1u + k]);
    }
}

static void check_scores(const scase *c, const golden *g)
{
    long long best = 0;
    int arg = -1;
    unsigned j;
    for (j = 0; j < c->n_classes; ++j) {
        long long sc = 0;
        unsigned t;
        for (t = 0; t < c->steps; ++t) {
            sc += g->out[(size_t)t * c->n_classes + j];
        }
        CHECK(sg_scores(&rt)[j] == sc, "%s: score %u is %lld, golden %lld", c->name, j,
              (long long)sg_scores(&rt)[j], sc);
        if (arg < 0 || sc > best) {
            best = sc;
            arg = (int)j;
        }
    }
    CHECK(sg_prediction(&rt) == arg, "%s: prediction %d, golden %d", c->name, sg_prediction(&rt),
          arg);
}

/* The counts of each step as events (sg_feed, one packet per step); a step with a cell
 * beyond 64 events goes in as its frame (sg_step). */
static void run_as_events(const scase *c, const golden *g)
{
    const unsigned hw = (unsigned)model.in_h * model.in_w;
    unsigned t;
    CHECK(sg_set_origin(&rt, 1000) == SG_OK, "origin");
    for (t = 0; t < c->steps; ++t) {
        const uint16_t *frame = g->in + (size_t)t * c->n_in;
        size_t n = 0;
        unsigned cell;
        int saturated = 0;
        for (cell = 0; cell < c->n_in; ++cell) {
            unsigned k;
            if (frame[cell] > 64u) {
                saturated = 1;
                break;
            }
            for (k = 0; k < frame[cell] && n < MAX_EVENTS; ++k, ++n) {
                const unsigned p = cell / hw;
                const unsigned yx = cell - p * hw;
                /* times spread over the step, a pixel inside the downsampled cell */
                events[n].t_us =
                    1000 + (int64_t)t * model.dt_us + (int64_t)((n * 7u) % model.dt_us);
                events[n].x =
                    (uint16_t)((yx % model.in_w) * model.downsample + (k % model.downsample));
                events[n].y = (uint16_t)((yx / model.in_w) * model.downsample);
                events[n].p = (uint8_t)(model.in_c == 2u ? p : (k & 1u));
            }
        }
        if (saturated) {
            CHECK(sg_advance_to(&rt, 1000 + (int64_t)t * model.dt_us) == SG_OK, "advance");
            CHECK(sg_step(&rt, frame) == SG_OK, "saturated step");
        } else {
            size_t i;
            for (i = 1; i < n; ++i) { /* time order */
                sg_event ev = events[i];
                size_t j = i;
                while (j > 0 && events[j - 1u].t_us > ev.t_us) {
                    events[j] = events[j - 1u];
                    --j;
                }
                events[j] = ev;
            }
            CHECK(sg_feed(&rt, events, n) == SG_OK, "feed step %u", t);
            CHECK(sg_advance_to(&rt, 1000 + (int64_t)(t + 1u) * model.dt_us) == SG_OK, "advance");
        }
        if (!logits_ok(c, g, t, "feed")) {
            return;
        }
        check_stats(c, g, t, "feed");
    }
    check_scores(c, g);
    /* an event before the current step, one outside the sensor, one with p > 1 */
    events[0].t_us = 0;
    events[0].x = 0;
    events[0].y = 0;
    events[0].p = 0;
    CHECK(sg_feed(&rt, events, 1) == SG_ERR_TIME, "event in the past");
    events[0].t_us = 1000 + (int64_t)c->steps * model.dt_us;
    events[0].x = model.sensor_w;
    events[1] = events[0];
    events[1].x = 0;
    events[1].p = 2;
    {
        sg_stats before;
        sg_stats after;
        (void)sg_get_stats(&rt, &before);
        CHECK(sg_feed(&rt, events, 2) == SG_OK, "dropped events");
        (void)sg_get_stats(&rt, &after);
        CHECK(after.events_dropped == before.events_dropped + 2u, "events_dropped");
    }
}

/* Every truncation refused; every byte changed (re-signed) refused or bound and run. */
static void mutate(const scase *c, size_t size, const golden *g)
{
    uint8_t *w = (uint8_t *)work_buf;
    const uint8_t *orig = (const uint8_t *)file_buf;
    const size_t table_end =
        (size_t)rd32(orig + SG_HDR_LAYERS_OFFSET) + (size_t)c->n_entries * SG_FMT_LAYER_ENTRY_SIZE;
    size_t i;
    unsigned rejected = 0;
    for (i = 0; i < size; i += 3u) {
        memcpy(w, orig, i);
        CHECK(sg_model_load(&model, w, i) != SG_OK, "%s: truncation to %u accepted", c->name,
              (unsigned)i);
    }
    for (i = 0; i < size; i += i < table_end ? 1u : 5u) { /* every 5th byte of the blobs */
        if ((i >= 16u && i < 20u) || (i >= 60u && i < 64u)) {
            continue; /* the CRCs themselves */
        }
        memcpy(w, orig, size);
        w[i] ^= (uint8_t)(0x5Au + i);
        resign_buf(w, size);
        if (sg_model_load(&model, w, size) != SG_OK) {
            ++rejected;
            CHECK(model.error_offset <= size, "error offset %u", (unsigned)model.error_offset);
        } else if (sg_arena_size(&model) <= sizeof arena_buf) {
            CHECK(sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf) == SG_OK,
                  "a loaded mutation must bind");
            if (model.in_c * model.in_h * model.in_w == c->n_in) {
                (void)sg_step(&rt, g->in);
                (void)sg_step(&rt, g->in + c->n_in);
            }
        }
    }
    CHECK(rejected > (table_end + (size - table_end) / 5u) / 8u, "%s: only %u corruptions rejected",
          c->name, rejected);
}

static void run_case(const scase *c)
{
    char name[96];
    size_t size;
    size_t n_bytes;
    uint8_t *file;
    golden g;
    unsigned t;
    unsigned pass;
    sg_layer_info info;

    snprintf(name, sizeof name, "snn_%s.sgm", c->name);
    file = (uint8_t *)sg_test_read_alloc(dir, name, &size);
    CHECK(size <= MAX_FILE, "%s: file too large", c->name);
    if (size > MAX_FILE || c->n_entries > MAX_ENTRIES) {
        free(file);
        return;
    }
    memcpy(file_buf, file, size);
    free(file);
    snprintf(name, sizeof name, "snn_%s.in", c->name);
    g.in = (const uint16_t *)sg_test_read_alloc(dir, name, &n_bytes);
    CHECK(n_bytes == (size_t)c->steps * c->n_in * 2u, "%s: input size", c->name);
    snprintf(name, sizeof name, "snn_%s.out", c->name);
    g.out = (const int32_t *)sg_test_read_alloc(dir, name, &n_bytes);
    CHECK(n_bytes == (size_t)c->steps * c->n_classes * 4u, "%s: output size", c->name);
    snprintf(name, sizeof name, "snn_%s.stats", c->name);
    g.stats = (const uint32_t *)sg_test_read_alloc(dir, name, &n_bytes);
    CHECK(n_bytes == (size_t)c->steps * (1u + c->n_entries) * 4u, "%s: stats size", c->name);

    CHECK(sg_model_load(&model, file_buf, size) == SG_OK, "%s: load (%s at %u)", c->name,
          model.error_field, (unsigned)model.error_offset);
    CHECK(sg_model_kind(&model) == SG_FORMAT_VERSION_SNN, "%s: kind", c->name);
    CHECK(sg_model_window(&model) == 1u, "%s: window", c->name);
    CHECK(sg_model_count_channels(&model) == model.in_c, "%s: count channels", c->name);
    CHECK(sg_model_n_layers(&model) == c->n_entries, "%s: layers", c->name);
    CHECK(sg_model_layer(&model, (uint16_t)(c->n_entries - 1u), &info) == SG_OK &&
              info.flags == SG_FLAG_OUTPUT && info.n_out == c->n_classes,
          "%s: output layer info", c->name);
    CHECK(sg_model_layer(&model, (uint16_t)c->n_entries, &info) == SG_ERR_ARG,
          "%s: layer past the end", c->name);
    CHECK(sg_arena_size(&model) <= sizeof arena_buf, "%s: arena too large", c->name);
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sg_arena_size(&model) - 1u) == SG_ERR_ARENA,
          "%s: short arena accepted", c->name);
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf) == SG_OK, "%s: init", c->name);
    CHECK(sg_arena_used(&rt) == sg_arena_size(&model), "%s: arena used %u != %u", c->name,
          (unsigned)sg_arena_used(&rt), (unsigned)sg_arena_size(&model));
    CHECK(sg_step_tensor(&rt, (const int8_t *)g.in) == SG_ERR_UNSUPPORTED, "tensor input");

    /* twice: the second pass after sg_runtime_reset gives the same steps */
    for (pass = 0; pass < 2u; ++pass) {
        for (t = 0; t < c->steps; ++t) {
            CHECK(sg_step(&rt, g.in + (size_t)t * c->n_in) == SG_OK, "%s step %u", c->name, t);
            if (!logits_ok(c, &g, t, pass == 0u ? "step" : "after reset")) {
                break;
            }
            check_stats(c, &g, t, "step");
        }
        check_scores(c, &g);
        CHECK(sg_runtime_reset(&rt) == SG_OK, "reset");
        CHECK(sg_prediction(&rt) == -1, "prediction after reset");
    }
    run_as_events(c, &g);
    mutate(c, size, &g);
    free((void *)g.in);
    free((void *)g.out);
    free((void *)g.stats);
}

int main(int argc, char **argv)
{
    char line[256];
    size_t size;
    char *text;
    char *p;
    unsigned n_cases = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s GOLDEN_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    text = (char *)sg_test_read_alloc(dir, "snn_cases.txt", &size);
    text[size] = '\0';
    p = text;
    while (*p != '\0') {
        scase c;
        char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len >= sizeof line) {
            len = sizeof line - 1u;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p += end != NULL ? len + 1u : len;
        memset(&c, 0, sizeof c);
        if (sscanf(line, "%31s %u %u %u %u", c.name, &c.steps, &c.n_in, &c.n_classes,
                   &c.n_entries) != 5) {
            continue;
        }
        run_case(&c);
        ++n_cases;
    }
    free(text);
    CHECK(n_cases >= 5u, "only %u golden cases", n_cases);
    printf("test_snn: %u cases, %d checks, %d failures\n", n_cases, checks, failures);
    return failures == 0 ? 0 : 1;
}
