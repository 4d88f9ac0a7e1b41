/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the event decoders (sg_decode.h). The first input byte picks the
 * decoder, the rest is its input:
 *   0 AEDAT 4 event packet (uncompressed: the host decompresses packets with python-lz4
 *     or zstandard before sg_aedat4_decode_events)
 *   1 EVT 3.0 words, 2 EVT 2.0 words
 *   3 AEDAT 3.1 polarity records
 * Besides memory errors (ASan/UBSan), it traps on broken properties: decoding EVT words
 * in two pieces with a small output must give the events and state of one call; an
 * event packet decoded into a buffer one record short must report SG_ERR_ARENA with the
 * count; successful decodes stay within the capacity they were given.
 */
#include <stdint.h>
#include <string.h>

#include "sg_decode.h"

#define SG_FUZZ_EVENTS (1u << 16)

static uint8_t out_a[(SG_FUZZ_EVENTS + 12u) * SG_EVENT_RECORD_SIZE];
static uint8_t out_b[(SG_FUZZ_EVENTS + 12u) * SG_EVENT_RECORD_SIZE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_packet(const uint8_t *p, size_t n)
{
    size_t k = 0, k2 = 0;
    uint64_t err = 0;
    const sg_status st = sg_aedat4_decode_events(p, n, out_a, SG_FUZZ_EVENTS, &k, &err);
    if (st == SG_OK && k > SG_FUZZ_EVENTS) {
        __builtin_trap();
    }
    if (st == SG_OK && k > 0) {
        if (sg_aedat4_decode_events(p, n, out_b, k - 1u, &k2, &err) != SG_ERR_ARENA || k2 != k) {
            __builtin_trap();
        }
    }
    if (st == SG_ERR_BLOB && err > (uint64_t)n + (1ull << 36)) {
        __builtin_trap(); /* offsets stay within what a 32-bit offset and count can reach */
    }
}

/* Decode all words with a capacity of `cap` records per call; returns the event count. */
static size_t fuzz_evt(int evt3, const uint8_t *w, size_t n_words, size_t split, size_t cap,
                       uint8_t *out, sg_evt3_state *s3, sg_evt2_state *s2)
{
    const size_t wsize = evt3 ? 2u : 4u;
    size_t k = 0, piece;
    (void)sg_evt3_state_init(s3);
    (void)sg_evt2_state_init(s2);
    for (piece = 0; piece < 2u; piece++) {
        size_t done = piece ? split : 0u;
        const size_t end = piece ? n_words : split;
        while (done < end) {
            size_t used = 0, made = 0;
            const sg_status st = evt3 ? sg_evt3_decode(s3, w + done * wsize, end - done, 1000,
                                                       out + k * 13u, cap, &used, &made)
                                      : sg_evt2_decode(s2, w + done * wsize, end - done, 1000,
                                                       out + k * 13u, cap, &used, &made);
            if (st != SG_OK || made > cap || used > end - done || (used == 0 && made == 0)) {
                __builtin_trap();
            }
            done += used;
            k += made;
        }
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *in = data + 1;
    size_t n;
    if (size < 1u) {
        return 0;
    }
    n = size - 1u;
    switch (data[0] % 4u) {
    case 0:
        fuzz_packet(in, n);
        break;
    case 1:
    case 2: {
        const int evt3 = data[0] % 4u == 1u;
        const size_t n_words = n / (evt3 ? 2u : 4u);
        sg_evt3_state a3, b3;
        sg_evt2_state a2, b2;
        size_t ka, kb;
        if (n_words * (evt3 ? 12u : 1u) > SG_FUZZ_EVENTS) {
            return 0;
        }
        ka = fuzz_evt(evt3, in, n_words, 0, SG_FUZZ_EVENTS + 12u, out_a, &a3, &a2);
        kb = fuzz_evt(evt3, in, n_words, n_words / 3u,
                      evt3 ? 12u + data[0] / 4u : 1u + data[0] / 4u, out_b, &b3, &b2);
        if (ka != kb || memcmp(out_a, out_b, ka * SG_EVENT_RECORD_SIZE) != 0 ||
            memcmp(&a3, &b3, sizeof a3) != 0 || memcmp(&a2, &b2, sizeof a2) != 0) {
            __builtin_trap(); /* pieces and early stops must not change the result */
        }
        break;
    }
    default: {
        size_t k = 0, bad = 0;
        const size_t recs = n / 8u;
        sg_status st;
        if (recs > SG_FUZZ_EVENTS) {
            return 0;
        }
        /* bits 2 and 3..7 of the selector byte: include_invalid, ts_overflow */
        st = sg_aedat31_decode_polarity(in, recs, data[0] >> 3, (data[0] >> 2) & 1u, out_a, &k,
                                        &bad);
        if (st == SG_OK && k > recs) {
            __builtin_trap();
        }
        break;
    }
    }
    return 0;
}
