/* SPDX-License-Identifier: MIT */
/*
 * C tests of the event decoders (sg_decode.h) and filters (sg_preprocess.h) against golden
 * cases from the Python/numpy references (gen_decode_golden.py): events compared bit-exact
 * (first differing record printed), decoder state, status and error offsets. The EVT
 * decoders run in two pieces with a small output capacity (state carried, early stops);
 * the stateful filters in two batches. Usage: test_decode GOLDEN_DIR.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_decode.h"
#include "sg_preprocess.h"

#define MAX_IN (1u << 16)
#define MAX_OUT 24000u /* records */
#define REC SG_EVENT_RECORD_SIZE
#define OUT_BYTES ((MAX_OUT + 12u) * REC) /* MAX_OUT records + an EVT 3.0 vector */
#define MAX_PIXELS 16384u

enum { K_EVT3 = 1, K_EVT2, K_AEDAT31, K_AEDAT4, K_CROP, K_DOWNSAMPLE, K_REFRACTORY, K_BAF };

typedef struct golden_case {
    int64_t kind, in_bytes, out_len, status, aux;
    int64_t params[8];
    int64_t state[8];
} golden_case;

static int failures;
static int checks;
static int case_index;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        ++checks;                                                                                  \
        if (!(cond)) {                                                                             \
            ++failures;                                                                            \
            fprintf(stderr, "FAIL case %d (%s:%d): ", case_index, __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

static uint8_t in_buf[MAX_IN];
static uint8_t expected[MAX_OUT * REC];
static uint8_t out_buf[OUT_BYTES];
static sg_event events[MAX_OUT];
static int64_t pixel_map[MAX_PIXELS];

static int64_t rd64(const uint8_t *b)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) {
        v = (v << 8) | b[i];
    }
    return (int64_t)v;
}

/* Read n bytes and the zero padding to 8; 0 at a clean end of file. */
static int read_padded(FILE *f, void *dst, size_t n)
{
    uint8_t pad[8];
    if (n && fread(dst, 1, n, f) != n) {
        return 0;
    }
    if (n % 8u && fread(pad, 1, 8u - n % 8u, f) != 8u - n % 8u) {
        return 0;
    }
    return 1;
}

/* Records equal: report the first differing one. */
static void check_records(const uint8_t *got, size_t n_got, const char *what)
{
    size_t i;
    for (i = 0; i < n_got; i++) {
        if (memcmp(got + i * REC, expected + i * REC, REC) != 0) {
            CHECK(0, "%s: record %lu differs", what, (unsigned long)i);
            return;
        }
    }
}

static void to_record(uint8_t *r, const sg_event *e)
{
    uint64_t u = (uint64_t)e->t_us;
    int i;
    r[0] = (uint8_t)e->x;
    r[1] = (uint8_t)(e->x >> 8);
    r[2] = (uint8_t)e->y;
    r[3] = (uint8_t)(e->y >> 8);
    for (i = 0; i < 8; i++) {
        r[4 + i] = (uint8_t)(u >> (8 * i));
    }
    r[12] = e->p;
}

static void from_records(const uint8_t *r, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++, r += REC) {
        events[i].x = (uint16_t)(r[0] | (r[1] << 8));
        events[i].y = (uint16_t)(r[2] | (r[3] << 8));
        events[i].t_us = rd64(r + 4);
        events[i].p = r[12];
    }
}

/* EVT words decoded in two pieces, each in calls of at most `capacity` records. */
static void run_evt(const golden_case *c)
{
    const int evt3 = c->kind == K_EVT3;
    const size_t wsize = evt3 ? 2u : 4u;
    const size_t n = (size_t)c->in_bytes / wsize;
    const size_t split = (size_t)c->params[1];
    const size_t cap = (size_t)c->params[2];
    sg_evt3_state s3;
    sg_evt2_state s2;
    size_t piece, k = 0;
    CHECK(sg_evt3_state_init(&s3) == SG_OK && sg_evt2_state_init(&s2) == SG_OK, "state init");
    for (piece = 0; piece < 2; piece++) {
        size_t done = piece ? split : 0;
        const size_t end = piece ? n : split;
        while (done < end) {
            size_t used = 0, made = 0, room = MAX_OUT + 12u - k;
            sg_status st;
            room = room < cap ? room : cap;
            st = evt3 ? sg_evt3_decode(&s3, in_buf + done * wsize, end - done, c->params[0],
                                       out_buf + k * REC, room, &used, &made)
                      : sg_evt2_decode(&s2, in_buf + done * wsize, end - done, c->params[0],
                                       out_buf + k * REC, room, &used, &made);
            CHECK(st == SG_OK, "decode status %d", (int)st);
            if (st != SG_OK || (used == 0 && made == 0)) {
                CHECK(0, "decoder made no progress at word %lu", (unsigned long)done);
                return;
            }
            done += used;
            k += made;
        }
    }
    CHECK(k == (size_t)c->out_len, "%lu events, expected %ld", (unsigned long)k, (long)c->out_len);
    check_records(out_buf, k < (size_t)c->out_len ? k : (size_t)c->out_len, evt3 ? "evt3" : "evt2");
    if (evt3) {
        const int64_t got[6] = {s3.y, s3.time_low, s3.time_high, s3.raw_high, s3.base_x, s3.pol};
        CHECK(memcmp(got, c->state, sizeof got) == 0, "evt3 state differs");
    } else {
        CHECK(s2.time_high == c->state[0] && s2.raw_high == c->state[1], "evt2 state differs");
    }
}

static void run_aedat31(const golden_case *c)
{
    size_t k = 0, bad = 0;
    const sg_status st = sg_aedat31_decode_polarity(in_buf, (size_t)c->in_bytes / 8u, c->params[0],
                                                    (int)c->params[1], out_buf, &k, &bad);
    CHECK(st == (sg_status)c->status, "status %d, expected %ld", (int)st, (long)c->status);
    if (st != SG_OK && c->status != 0) {
        CHECK(bad == (size_t)c->aux, "bad index %lu, expected %ld", (unsigned long)bad,
              (long)c->aux);
    }
    CHECK(k == (size_t)c->out_len, "%lu events, expected %ld", (unsigned long)k, (long)c->out_len);
    check_records(out_buf, k < (size_t)c->out_len ? k : (size_t)c->out_len, "aedat31");
}

static void run_aedat4(const golden_case *c)
{
    size_t k = 0;
    uint64_t err = 0;
    sg_status st;
    if (c->status == 0 && c->out_len > 0) { /* too small: nothing written, the count returned */
        st = sg_aedat4_decode_events(in_buf, (size_t)c->in_bytes, out_buf, (size_t)c->out_len - 1u,
                                     &k, &err);
        CHECK(st == SG_ERR_ARENA && k == (size_t)c->out_len, "short output: status %d, %lu",
              (int)st, (unsigned long)k);
    }
    st = sg_aedat4_decode_events(in_buf, (size_t)c->in_bytes, out_buf, MAX_OUT, &k, &err);
    CHECK(st == (sg_status)c->status, "status %d, expected %ld", (int)st, (long)c->status);
    if (c->status != 0 && st == (sg_status)c->status) {
        CHECK(err == (uint64_t)c->aux, "error at %lu, expected %ld", (unsigned long)err,
              (long)c->aux);
        return;
    }
    CHECK(k == (size_t)c->out_len, "%lu events, expected %ld", (unsigned long)k, (long)c->out_len);
    check_records(out_buf, k < (size_t)c->out_len ? k : (size_t)c->out_len, "aedat4");
}

static void run_filter(const golden_case *c)
{
    const size_t n = (size_t)c->in_bytes / REC;
    size_t k = 0, i;
    from_records(in_buf, n);
    if (c->kind == K_CROP) {
        CHECK(sg_crop((uint32_t)c->params[0], (uint32_t)c->params[1], (uint32_t)c->params[2],
                      (uint32_t)c->params[3], events, n, &k) == SG_OK,
              "crop status");
    } else if (c->kind == K_DOWNSAMPLE) {
        CHECK(sg_downsample((uint32_t)c->params[0], events, n) == SG_OK, "downsample status");
        k = n;
    } else {
        const size_t split = (size_t)c->params[4];
        const uint16_t w = (uint16_t)c->params[2], h = (uint16_t)c->params[3];
        size_t k1 = 0, k2 = 0;
        sg_refractory rf;
        sg_baf baf;
        sg_status st;
        if (c->kind == K_REFRACTORY) {
            st = sg_refractory_init(&rf, c->params[0], w, h, pixel_map, sizeof pixel_map);
            if (st == SG_OK) {
                st = sg_refractory_filter(&rf, events, split, &k1);
            }
            if (st == SG_OK) {
                st = sg_refractory_filter(&rf, events + split, n - split, &k2);
            }
        } else {
            st = sg_baf_init(&baf, c->params[0], (uint16_t)c->params[1], w, h, pixel_map,
                             sizeof pixel_map);
            if (st == SG_OK) {
                st = sg_baf_filter(&baf, events, split, &k1);
            }
            if (st == SG_OK) {
                st = sg_baf_filter(&baf, events + split, n - split, &k2);
            }
        }
        CHECK(st == SG_OK, "filter status %d", (int)st);
        memmove(events + k1, events + split, k2 * sizeof events[0]);
        k = k1 + k2;
    }
    for (i = 0; i < k; i++) {
        to_record(out_buf + i * REC, &events[i]);
    }
    CHECK(k == (size_t)c->out_len, "%lu events kept, expected %ld", (unsigned long)k,
          (long)c->out_len);
    check_records(out_buf, k < (size_t)c->out_len ? k : (size_t)c->out_len, "filter");
}

/* By hand: an event outside a stateful filter's map is refused before anything changes. */
static void test_filter_refusals(void)
{
    static int64_t map[4 * 3];
    sg_refractory rf;
    sg_baf baf;
    sg_event ev[3] = {{100, 1, 1, 1}, {120, 4, 0, 0}, {130, 1, 1, 0}}; /* x = 4: outside 4 x 3 */
    size_t kept = 99;
    CHECK(sg_refractory_init(&rf, 50, 4, 3, map, sizeof map) == SG_OK, "refractory init");
    CHECK(sg_refractory_filter(&rf, ev, 3, &kept) == SG_ERR_ARG && kept == 0,
          "refractory: outside");
    CHECK(ev[1].x == 4 && ev[2].t_us == 130, "refractory: events changed on refusal");
    ev[1].x = 3;
    CHECK(sg_refractory_filter(&rf, ev, 3, &kept) == SG_OK && kept == 2 && ev[1].t_us == 120,
          "refractory after a refusal: kept %lu", (unsigned long)kept); /* 130 < 100 + 50 */
    CHECK(sg_refractory_init(&rf, 50, 4, 3, map, sizeof map - 1u) == SG_ERR_ARENA, "small state");
    CHECK(sg_baf_init(&baf, 10, 0, 4, 3, map, sizeof map) == SG_ERR_ARG, "neighbourhood 0");
    CHECK(sg_baf_init(&baf, 10, 1, 4, 3, map, sizeof map) == SG_OK, "baf init");
    ev[0].y = 3;
    CHECK(sg_baf_filter(&baf, ev, 3, &kept) == SG_ERR_ARG && kept == 0, "baf: outside");
    ev[0].y = 1;
    CHECK(sg_baf_filter(&baf, ev, 3, &kept) == SG_OK && kept == 0, "baf: no neighbour was seen");
}

int main(int argc, char **argv)
{
    char path[1024];
    uint8_t head[24 * 8];
    int per_kind[K_BAF + 1] = {0};
    FILE *f;
    if (argc != 2) {
        fprintf(stderr, "usage: %s GOLDEN_DIR\n", argv[0]);
        return 2;
    }
    snprintf(path, sizeof path, "%s/decode.golden", argv[1]);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        return 2;
    }
    while (fread(head, 1, sizeof head, f) == sizeof head) {
        golden_case c;
        int i;
        c.kind = rd64(head);
        c.in_bytes = rd64(head + 8);
        c.out_len = rd64(head + 16);
        c.status = rd64(head + 24);
        c.aux = rd64(head + 32);
        for (i = 0; i < 8; i++) {
            c.params[i] = rd64(head + 40 + 8 * i);
            c.state[i] = rd64(head + 104 + 8 * i);
        }
        if (c.kind < K_EVT3 || c.kind > K_BAF || c.in_bytes < 0 || (uint64_t)c.in_bytes > MAX_IN ||
            c.out_len < 0 || (uint64_t)c.out_len > MAX_OUT ||
            !read_padded(f, in_buf, (size_t)c.in_bytes) ||
            !read_padded(f, expected, (size_t)c.out_len * REC)) {
            fprintf(stderr, "%s: bad case %d\n", path, case_index);
            return 2;
        }
        switch (c.kind) {
        case K_EVT3:
        case K_EVT2:
            run_evt(&c);
            break;
        case K_AEDAT31:
            run_aedat31(&c);
            break;
        case K_AEDAT4:
            run_aedat4(&c);
            break;
        default:
            run_filter(&c);
            break;
        }
        per_kind[c.kind]++;
        case_index++;
    }
    fclose(f);
    test_filter_refusals();
    printf("test_decode: %d cases (evt3 %d, evt2 %d, aedat31 %d, aedat4 %d, filters %d), "
           "%d checks, %d failures\n",
           case_index, per_kind[K_EVT3], per_kind[K_EVT2], per_kind[K_AEDAT31], per_kind[K_AEDAT4],
           per_kind[K_CROP] + per_kind[K_DOWNSAMPLE] + per_kind[K_REFRACTORY] + per_kind[K_BAF],
           checks, failures);
    return failures || case_index < 300 ? 1 : 0;
}
