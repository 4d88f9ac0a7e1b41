/* SPDX-License-Identifier: MIT */
/*
 * C tests of version 2 models (imported int8 networks, FORMAT.md §7-10): golden logits
 * from gen_qnet_golden.py (TFLite Micro's outputs, bit-exact) through sg_step (event
 * counts), sg_feed + sg_advance_to (the same counts as events) and sg_step_tensor;
 * statistics against pysg.qnet.QnetRef's totals; reset; API refusals; loader rejection
 * of every truncation and of re-signed byte corruptions without a crash.
 * Usage: test_qnet GOLDEN_DIR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_format.h"
#include "sg_runtime.h"
#include "test_files.h"

#define MAX_FILE (1u << 14)
#define ARENA_WORDS (1u << 14)
#define MAX_EVENTS 4096u

static const char *dir;

static uint64_t file_buf[MAX_FILE / 8];
static uint64_t work_buf[MAX_FILE / 8];
static uint64_t arena_buf[ARENA_WORDS];
static sg_event events[MAX_EVENTS];
static sg_model model;
static sg_runtime rt;

static void *read_alloc(const char *name, size_t *size)
{
    return sg_test_read_alloc(dir, name, size);
}

typedef struct qcase {
    char name[32];
    char mode[16];
    unsigned steps, n_in, n_classes, n_entries;
    unsigned long long synops;
    unsigned long long deltas[16];
    unsigned long long lost; /**< events the event ring loses (FORMAT.md 7.2) */
} qcase;

/* The logits of every step against the golden ones. */
static void check_logits(const qcase *c, const int32_t *want, unsigned t, const char *how)
{
    const int32_t *got = sg_logits(&rt);
    unsigned j;
    for (j = 0; j < c->n_classes; ++j) {
        if (got[j] != want[(size_t)t * c->n_classes + j]) {
            CHECK(0, "%s %s step %u class %u: %ld != golden %ld", c->name, how, t, j, (long)got[j],
                  (long)want[(size_t)t * c->n_classes + j]);
            return;
        }
    }
    ++checks;
}

static void run_case(const qcase *c)
{
    char name[96];
    size_t size;
    size_t in_size;
    size_t out_size;
    void *in;
    int32_t *want;
    uint8_t *file;
    sg_stats st;
    unsigned t;
    unsigned l;
    const int counts = strcmp(c->mode, "counts") == 0;

    snprintf(name, sizeof name, "qnet_%s.sgm", c->name);
    file = (uint8_t *)read_alloc(name, &size);
    CHECK(size <= MAX_FILE, "%s: file too large", c->name);
    memcpy(file_buf, file, size);
    free(file);
    snprintf(name, sizeof name, "qnet_%s.in", c->name);
    in = read_alloc(name, &in_size);
    snprintf(name, sizeof name, "qnet_%s.out", c->name);
    want = (int32_t *)read_alloc(name, &out_size);
    CHECK(in_size == (size_t)c->steps * c->n_in * (counts ? 2u : 1u), "%s: input size", c->name);
    CHECK(out_size == (size_t)c->steps * c->n_classes * 4u, "%s: output size", c->name);

    CHECK(sg_model_load(&model, file_buf, size) == SG_OK, "%s: load (%s at %u)", c->name,
          model.error_field, (unsigned)model.error_offset);
    CHECK(model.format_version == SG_FORMAT_VERSION_QNET, "%s: version", c->name);
    { /* the public queries agree with the input entry and the layer views */
        const sg_qlayer *e0 = &model.net.qnet.layers[0];
        sg_layer_info info;
        uint16_t l;
        CHECK(sg_model_kind(&model) == SG_FORMAT_VERSION_QNET, "%s: kind", c->name);
        CHECK(sg_model_window(&model) == (e0->kernel_h ? e0->kernel_w : 1u), "%s: window", c->name);
        CHECK(sg_model_count_channels(&model) == (e0->kernel_h ? e0->depth_multiplier : 0u),
              "%s: count channels", c->name);
        CHECK(sg_model_n_layers(&model) == model.n_stages - 1u, "%s: layers", c->name);
        for (l = 0; l + 1u < model.n_stages; ++l) {
            const sg_qlayer *q = &model.net.qnet.layers[l + 1u];
            const uint64_t taps = (uint64_t)q->kernel_h * q->kernel_w;
            const uint64_t fan_in = q->kind == SG_QKIND_CONV        ? taps * q->filter_c
                                    : q->kind == SG_QKIND_DEPTHWISE ? taps
                                    : q->kind == SG_QKIND_FC        ? (uint64_t)q->in_c
                                                                    : 0u;
            CHECK(sg_model_layer(&model, l, &info) == SG_OK && info.kind == q->kind &&
                      info.n_out == q->n_out && info.fan_in == fan_in,
                  "%s: layer %u info", c->name, (unsigned)l);
        }
        CHECK(sg_model_layer(&model, (uint16_t)(model.n_stages - 1u), &info) == SG_ERR_ARG,
              "%s: layer past the end", c->name);
    }
    CHECK(sg_arena_size(&model) <= sizeof arena_buf, "%s: arena too large", c->name);
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sg_arena_size(&model) - 1u) == SG_ERR_ARENA,
          "%s: short arena accepted", c->name);
    CHECK(sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf) == SG_OK, "%s: init", c->name);
    CHECK(sg_arena_used(&rt) == sg_arena_size(&model), "%s: arena used %u != %u", c->name,
          (unsigned)sg_arena_used(&rt), (unsigned)sg_arena_size(&model));

    /* twice: the second pass after sg_runtime_reset must give the same logits */
    for (l = 0; l < 2u; ++l) {
        for (t = 0; t < c->steps; ++t) {
            const sg_status s = counts
                                    ? sg_step(&rt, (const uint16_t *)in + (size_t)t * c->n_in)
                                    : sg_step_tensor(&rt, (const int8_t *)in + (size_t)t * c->n_in);
            CHECK(s == SG_OK, "%s step %u: status %d", c->name, t, (int)s);
            check_logits(c, want, t, l == 0u ? "step" : "after reset");
        }
        CHECK(sg_get_stats(&rt, &st) == SG_OK, "stats");
        CHECK(st.steps == c->steps, "%s: %llu steps", c->name, (unsigned long long)st.steps);
        CHECK(st.events_dropped == c->lost, "%s: %llu events dropped, the ring loses %llu", c->name,
              (unsigned long long)st.events_dropped, c->lost);
        CHECK(st.synops == c->synops, "%s: synops %llu != %llu", c->name,
              (unsigned long long)st.synops, c->synops);
        for (t = 0; t < c->n_entries; ++t) {
            CHECK(st.spikes[t] == c->deltas[t], "%s: entry %u sent %llu deltas, golden %llu",
                  c->name, t, (unsigned long long)st.spikes[t], c->deltas[t]);
        }
        { /* scores: logits summed from step W - 1 (the first whole window) on */
            const unsigned from =
                model.net.qnet.layers[0].kernel_h ? model.net.qnet.layers[0].kernel_w - 1u : 0u;
            long long best = 0;
            int arg = -1;
            unsigned j;
            for (j = 0; j < c->n_classes; ++j) {
                long long sc = 0;
                for (t = from; t < c->steps; ++t) {
                    sc += want[(size_t)t * c->n_classes + j];
                }
                CHECK(sg_scores(&rt)[j] == sc,
                      "%s: score %u is %lld, golden logits from step %u sum to %lld", c->name, j,
                      (long long)sg_scores(&rt)[j], from, sc);
                if (arg < 0 || sc > best) {
                    best = sc;
                    arg = (int)j;
                }
            }
            CHECK(sg_prediction(&rt) == arg, "%s: prediction %d, golden scores say %d", c->name,
                  sg_prediction(&rt), arg);
        }
        CHECK(sg_runtime_reset(&rt) == SG_OK, "reset");
        CHECK(sg_prediction(&rt) == -1, "prediction after reset");
    }

    if (counts) {
        /* the same counts as events through sg_feed, one packet per step */
        const sg_qlayer *e0 = &model.net.qnet.layers[0];
        const unsigned hw = (unsigned)e0->out_h * e0->out_w;
        unsigned long long total = 0;
        CHECK(sg_step_tensor(&rt, (const int8_t *)in) == SG_ERR_UNSUPPORTED, "tensor on counts");
        CHECK(sg_set_origin(&rt, 1000) == SG_OK, "origin");
        for (t = 0; t < c->steps; ++t) {
            const uint16_t *frame = (const uint16_t *)in + (size_t)t * c->n_in;
            size_t n = 0;
            unsigned cell;
            int saturated = 0;
            for (cell = 0; cell < c->n_in; ++cell) {
                unsigned k;
                if (frame[cell] > 64u) {
                    saturated = 1; /* too many events to feed: the sg_step case covers it */
                    continue;
                }
                for (k = 0; k < frame[cell] && n < MAX_EVENTS; ++k, ++n) {
                    const unsigned p = cell / hw;
                    const unsigned yx = cell - p * hw;
                    events[n].t_us = 1000 + (int64_t)t * model.dt_us + (int64_t)(k % model.dt_us);
                    events[n].x = (uint16_t)((yx % e0->out_w) * model.downsample);
                    events[n].y = (uint16_t)((yx / e0->out_w) * model.downsample);
                    events[n].p = (uint8_t)(e0->depth_multiplier == 2u ? p : (k & 1u));
                }
            }
            if (saturated) { /* keep the state equal: feed the saturated frame as counts */
                CHECK(sg_advance_to(&rt, 1000 + (int64_t)t * model.dt_us) == SG_OK, "advance");
                CHECK(sg_step(&rt, frame) == SG_OK, "saturated step");
                check_logits(c, want, t, "feed (saturated step)");
                continue;
            }
            /* sort by time: events of one step are in cell order, times k % dt */
            {
                size_t i;
                for (i = 1; i < n; ++i) {
                    sg_event ev = events[i];
                    size_t j = i;
                    while (j > 0 && events[j - 1u].t_us > ev.t_us) {
                        events[j] = events[j - 1u];
                        --j;
                    }
                    events[j] = ev;
                }
            }
            total += n;
            CHECK(sg_feed(&rt, events, n) == SG_OK, "feed step %u", t);
            CHECK(sg_advance_to(&rt, 1000 + (int64_t)(t + 1u) * model.dt_us) == SG_OK, "advance");
            check_logits(c, want, t, "feed");
        }
        CHECK(sg_get_stats(&rt, &st) == SG_OK, "stats");
        CHECK(st.events_in + st.events_dropped >= total, "%s: events_in %llu + dropped < fed %llu",
              c->name, (unsigned long long)st.events_in, total);
        CHECK(st.events_dropped == c->lost, "%s: feed: %llu events dropped, the ring loses %llu",
              c->name, (unsigned long long)st.events_dropped, c->lost);
        /* an event before the current step, and one outside the sensor */
        events[0].t_us = 0;
        events[0].x = 0;
        events[0].y = 0;
        events[0].p = 0;
        CHECK(sg_feed(&rt, events, 1) == SG_ERR_TIME, "event in the past");
        events[0].t_us = 1000 + (int64_t)c->steps * model.dt_us;
        events[0].x = model.sensor_w;
        CHECK(sg_feed(&rt, events, 1) == SG_OK, "dropped event");
        CHECK(sg_get_stats(&rt, &st) == SG_OK && st.events_dropped == c->lost + 1u,
              "events_dropped");
    } else {
        CHECK(sg_step(&rt, NULL) == SG_ERR_UNSUPPORTED, "sg_step on a tensor model");
        CHECK(sg_feed(&rt, events, 0) == SG_ERR_UNSUPPORTED, "sg_feed on a tensor model");
        CHECK(sg_step_tensor(&rt, NULL) == SG_ERR_ARG, "NULL tensor");
    }

    /* loader: every truncation, and every byte changed (CRCs re-signed): an error or a
     * valid model, never a crash (ASan/UBSan builds check the "never") */
    {
        uint8_t *w = (uint8_t *)work_buf;
        const uint8_t *orig = (const uint8_t *)file_buf;
        size_t i;
        unsigned rejected = 0;
        for (i = 0; i < size; ++i) {
            memcpy(w, orig, i);
            CHECK(sg_model_load(&model, w, i) != SG_OK, "%s: truncation to %u accepted", c->name,
                  (unsigned)i);
        }
        for (i = 0; i < size; ++i) {
            if (i == 16u || (i >= 60u && i < 64u)) {
                continue; /* the CRCs themselves */
            }
            memcpy(w, orig, size);
            w[i] ^= 0x5Au;
            resign_buf(w, size);
            if (sg_model_load(&model, w, size) != SG_OK) {
                ++rejected;
                CHECK(model.error_offset <= size, "error offset %u", (unsigned)model.error_offset);
            } else if (sg_arena_size(&model) <= sizeof arena_buf) {
                CHECK(sg_runtime_init(&rt, &model, arena_buf, sizeof arena_buf) == SG_OK,
                      "a loaded mutation must bind");
                if (counts) {
                    (void)sg_step(&rt, (const uint16_t *)in);
                } else {
                    (void)sg_step_tensor(&rt, (const int8_t *)in);
                }
            }
        }
        CHECK(rejected > 0u, "%s: no corruption rejected", c->name);
        memcpy(w, orig, size);
        wr32(w + 4, 4u); /* no kind reads version 4 */
        resign_buf(w, size);
        CHECK(sg_model_load(&model, w, size) == SG_ERR_VERSION, "version 4");
        (void)rd32;
    }
    free(in);
    free(want);
}

int main(int argc, char **argv)
{
    char line[512];
    size_t size;
    char *text;
    char *p;
    unsigned n_cases = 0;
    if (argc != 2) {
        fprintf(stderr, "usage: %s GOLDEN_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    text = (char *)read_alloc("qnet_cases.txt", &size);
    text[size] = '\0';
    p = text;
    while (*p != '\0') {
        qcase c;
        int used = 0;
        unsigned k;
        char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len >= sizeof line) {
            len = sizeof line - 1u;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p += end != NULL ? len + 1u : len;
        memset(&c, 0, sizeof c);
        if (sscanf(line, "%31s %15s %u %u %u %llu %u%n", c.name, c.mode, &c.steps, &c.n_in,
                   &c.n_classes, &c.synops, &c.n_entries, &used) != 7 ||
            c.n_entries > 16u) {
            continue;
        }
        for (k = 0; k < c.n_entries; ++k) {
            int more = 0;
            if (sscanf(line + used, "%llu%n", &c.deltas[k], &more) != 1) {
                break;
            }
            used += more;
        }
        if (sscanf(line + used, "%llu", &c.lost) != 1) { /* events the ring loses */
            continue;
        }
        run_case(&c);
        ++n_cases;
    }
    free(text);
    CHECK(n_cases >= 3u, "only %u golden cases", n_cases);
    printf("test_qnet: %u cases, %d checks, %d failures\n", n_cases, checks, failures);
    return failures == 0 ? 0 : 1;
}
