/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the device side of docs/PROTOCOL.md on the RAM test board: COBS
 * against the published vectors (Cheshire & Baker; the Wikipedia table), the frame
 * checks and drop counting, the exactly-once cache, and the op handlers' error paths
 * (uploads, firmware, streaming without a model). The end-to-end tests with a real
 * model are tests/test_device_posix.py.
 *
 * Longer than ~500 lines on purpose: one test program (firmware/posix.mk, test-posix)
 * whose application cases run in order on one RAM board and one application state
 * (request sequence numbers, slots and the reply cache carry over from case to case).
 */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "sg_app.h"
#include "sg_bootctl.h"
#include "sg_bootctl_priv.h"
#include "sg_proto.h"
#include "sg_proto_ops.h"
#include "sg_runtime.h"
#include "sg_slots.h"
#include "sg_test_board.h"

static int g_failures;
static int g_checks;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        g_checks++;                                                                  \
        if (!(cond)) {                                                               \
            g_failures++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_EQ(a, b)                                                                        \
    do {                                                                                      \
        long long a_ = (long long)(a), b_ = (long long)(b);                                   \
        g_checks++;                                                                           \
        if (a_ != b_) {                                                                       \
            g_failures++;                                                                     \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, \
                    a_, #b, b_);                                                              \
        }                                                                                     \
    } while (0)

/* Compare bytes; print the first differing index. */
static void check_bytes(const uint8_t *got, size_t n_got, const uint8_t *want, size_t n_want, const char *what)
{
    size_t i;
    g_checks++;
    if (n_got != n_want) {
        g_failures++;
        fprintf(stderr, "%s: %zu bytes, expected %zu\n", what, n_got, n_want);
        return;
    }
    for (i = 0; i < n_got; ++i) {
        if (got[i] != want[i]) {
            g_failures++;
            fprintf(stderr, "%s: first difference at byte %zu: 0x%02X != 0x%02X\n", what, i, got[i], want[i]);
            return;
        }
    }
}

/* ---------------------------------------------------------------- COBS vectors */

static void test_cobs_vectors(void)
{
    static const struct {
        uint8_t in[8];
        size_t n_in;
        uint8_t out[10];
        size_t n_out;
    } v[] = {
        {{0x00}, 1, {0x01, 0x01, 0x00}, 3},
        {{0x00, 0x00}, 2, {0x01, 0x01, 0x01, 0x00}, 4},
        {{0x00, 0x11, 0x00}, 3, {0x01, 0x02, 0x11, 0x01, 0x00}, 5},
        {{0x11, 0x22, 0x00, 0x33}, 4, {0x03, 0x11, 0x22, 0x02, 0x33, 0x00}, 6},
        {{0x11, 0x22, 0x33, 0x44}, 4, {0x05, 0x11, 0x22, 0x33, 0x44, 0x00}, 6},
        {{0x11, 0x00, 0x00, 0x00}, 4, {0x02, 0x11, 0x01, 0x01, 0x01, 0x00}, 6},
        {{0}, 0, {0x01, 0x00}, 2},
    };
    uint8_t in[256], out[300], want[300];
    size_t i, n;
    for (i = 0; i < sizeof v / sizeof v[0]; ++i) {
        n = sg_cobs_encode(v[i].in, v[i].n_in, out);
        check_bytes(out, n, v[i].out, v[i].n_out, "COBS short vector");
    }
    /* 01..FE (254 bytes) -> FF 01..FE 00 */
    for (i = 0; i < 254; ++i) {
        in[i] = (uint8_t)(i + 1);
        want[i + 1] = (uint8_t)(i + 1);
    }
    want[0] = 0xFF;
    want[255] = 0x00;
    n = sg_cobs_encode(in, 254, out);
    check_bytes(out, n, want, 256, "COBS 01..FE");
    /* 00..FE (255 bytes) -> 01 FF 01..FE 00 */
    for (i = 0; i < 255; ++i) {
        in[i] = (uint8_t)i;
    }
    want[0] = 0x01;
    want[1] = 0xFF;
    for (i = 0; i < 254; ++i) {
        want[i + 2] = (uint8_t)(i + 1);
    }
    want[256] = 0x00;
    n = sg_cobs_encode(in, 255, out);
    check_bytes(out, n, want, 257, "COBS 00..FE");
    /* 01..FF (255 bytes) -> FF 01..FE 02 FF 00 */
    for (i = 0; i < 255; ++i) {
        in[i] = (uint8_t)(i + 1);
    }
    want[0] = 0xFF;
    for (i = 0; i < 254; ++i) {
        want[i + 1] = (uint8_t)(i + 1);
    }
    want[255] = 0x02;
    want[256] = 0xFF;
    want[257] = 0x00;
    n = sg_cobs_encode(in, 255, out);
    check_bytes(out, n, want, 258, "COBS 01..FF");
    /* 02..FF 00 (255 bytes) -> FF 02..FF 01 01 00 */
    for (i = 0; i < 254; ++i) {
        in[i] = (uint8_t)(i + 2);
        want[i + 1] = (uint8_t)(i + 2);
    }
    in[254] = 0x00;
    want[0] = 0xFF;
    want[255] = 0x01;
    want[256] = 0x01;
    want[257] = 0x00;
    n = sg_cobs_encode(in, 255, out);
    check_bytes(out, n, want, 258, "COBS 02..FF 00");
}

/* ---------------------------------------------------------------- frame receiver */

/* Encode a packet (op, seq, payload, CRC) into @p frame; @p crc_xor corrupts the CRC. */
static size_t make_frame(uint8_t op, uint8_t seq, const uint8_t *payload, size_t n, uint32_t crc_xor,
                         uint8_t *frame)
{
    static uint8_t packet[SG_PROTO_PACKET_MAX];
    packet[0] = op;
    packet[1] = seq;
    sg_put_u16(packet + 2, (uint16_t)n);
    if (n > 0u) {
        memcpy(packet + 4, payload, n);
    }
    sg_put_u32(packet + 4 + n, sg_crc32(0, packet, 4 + n) ^ crc_xor);
    return sg_cobs_encode(packet, 8 + n, frame);
}

/* Feed bytes; return how many frames passed and the last one. */
static int feed(sg_proto_rx *rx, const uint8_t *data, size_t n, sg_proto_frame *last)
{
    int ok = 0;
    size_t i;
    for (i = 0; i < n; ++i) {
        ok += sg_proto_rx_byte(rx, data[i], last);
    }
    return ok;
}

static void test_frame_checks(void)
{
    static sg_proto_rx rx;
    static uint8_t frame[SG_PROTO_FRAME_MAX + 16], payload[SG_PROTO_MAX_PAYLOAD + 8];
    sg_proto_frame f;
    size_t n, i;
    uint8_t packet[16];

    sg_proto_rx_init(&rx);
    /* Every payload byte value, including runs of zeros and a 254-byte run without one. */
    for (i = 0; i < SG_PROTO_MAX_PAYLOAD; ++i) {
        payload[i] = (uint8_t)(i < 300 ? (i % 7 == 0 ? 0 : i) : i * 31u);
    }
    n = make_frame(0x31, 7, payload, SG_PROTO_MAX_PAYLOAD, 0, frame);
    CHECK_EQ(feed(&rx, frame, n, &f), 1);
    CHECK_EQ(f.op, 0x31);
    CHECK_EQ(f.seq, 7);
    check_bytes(f.payload, f.len, payload, SG_PROTO_MAX_PAYLOAD, "round trip, max payload");

    /* Lone delimiters (the host's resync) are neither frames nor drops. */
    memset(frame, 0, 5);
    CHECK_EQ(feed(&rx, frame, 5, &f), 0);
    CHECK_EQ(rx.frames_dropped, 0);

    /* Bad CRC: dropped and counted. */
    n = make_frame(0x02, 1, payload, 3, 0x1u, frame);
    CHECK_EQ(feed(&rx, frame, n, &f), 0);
    CHECK_EQ(rx.frames_dropped, 1);

    /* len says 4 payload bytes but 3 arrived (CRC over what is there). */
    packet[0] = 0x02;
    packet[1] = 2;
    sg_put_u16(packet + 2, 4);
    packet[4] = packet[5] = packet[6] = 9;
    sg_put_u32(packet + 7, sg_crc32(0, packet, 7));
    n = sg_cobs_encode(packet, 11, frame);
    CHECK_EQ(feed(&rx, frame, n, &f), 0);
    CHECK_EQ(rx.frames_dropped, 2);

    /* Shorter than header + CRC. */
    n = sg_cobs_encode(packet, 5, frame);
    CHECK_EQ(feed(&rx, frame, n, &f), 0);
    CHECK_EQ(rx.frames_dropped, 3);

    /* A COBS block cut short by the delimiter. */
    frame[0] = 0x05;
    frame[1] = 0x11;
    frame[2] = 0x00;
    CHECK_EQ(feed(&rx, frame, 3, &f), 0);
    CHECK_EQ(rx.frames_dropped, 4);

    /* Longer than the buffer: one drop, and the receiver is in step for the next frame. */
    memset(frame, 0x42, SG_PROTO_FRAME_MAX + 10);
    frame[SG_PROTO_FRAME_MAX + 10] = 0;
    CHECK_EQ(feed(&rx, frame, SG_PROTO_FRAME_MAX + 11, &f), 0);
    CHECK_EQ(rx.frames_dropped, 5);
    n = make_frame(0x03, 9, NULL, 0, 0, frame);
    CHECK_EQ(feed(&rx, frame, n, &f), 1);
    CHECK_EQ(f.seq, 9);
    CHECK_EQ(f.len, 0);

    /* Garbage before a frame (no delimiter between): the garbage spoils that frame only. */
    frame[0] = 0x37;
    frame[1] = 0x99;
    n = make_frame(0x03, 10, NULL, 0, 0, frame + 2);
    CHECK_EQ(feed(&rx, frame, n + 2, &f), 0);
    CHECK_EQ(rx.frames_dropped, 6);
    n = make_frame(0x03, 11, NULL, 0, 0, frame);
    CHECK_EQ(feed(&rx, frame, n, &f), 1);
    CHECK_EQ(rx.frames_ok, 3);
}

/* ---------------------------------------------------------------- the application */

static uint8_t g_reply[SG_PROTO_PACKET_MAX];
static size_t g_reply_len; /* payload bytes of the last reply */
static uint8_t g_raw[SG_PROTO_FRAME_MAX];
static size_t g_raw_len;   /* the last reply as it left the UART */

/* One-shot COBS decoder of exactly one frame (independent of the streaming one). */
static int decode_one(const uint8_t *in, size_t n, uint8_t *out, size_t *n_out)
{
    size_t i = 0, o = 0;
    if (n == 0u || in[n - 1] != 0u) {
        return -1;
    }
    n--;
    while (i < n) {
        uint8_t code = in[i++];
        size_t k;
        if (code == 0u || i + code - 1u > n) {
            return -1;
        }
        for (k = 1; k < code; ++k) {
            out[o++] = in[i++];
        }
        if (code != 0xFFu && i < n) {
            out[o++] = 0;
        }
    }
    *n_out = o;
    return 0;
}

/* Send one request; decode the single reply (op | 0x80, same seq, CRC) into g_reply. Returns its status. */
static int request(uint8_t op, uint8_t seq, const uint8_t *payload, size_t n)
{
    static uint8_t frame[SG_PROTO_FRAME_MAX];
    static uint8_t packet[SG_PROTO_PACKET_MAX + 8];
    const uint8_t *out;
    size_t n_out, n_packet = 0, len;
    sg_test_uart_take();
    len = make_frame(op, seq, payload, n, 0, frame);
    sg_app_receive(frame, len);
    out = sg_test_uart_output(&n_out);
    g_raw_len = n_out < sizeof g_raw ? n_out : sizeof g_raw;
    memcpy(g_raw, out, g_raw_len);
    if (n_out == 0u || decode_one(out, n_out, packet, &n_packet) != 0 || n_packet < 9u) {
        fprintf(stderr, "op 0x%02X: no valid reply frame (%zu bytes)\n", op, n_out);
        g_failures++;
        return 1000;
    }
    len = sg_get_u16(packet + 2);
    CHECK_EQ(packet[0], op | SG_PROTO_REPLY_BIT);
    CHECK_EQ(packet[1], seq);
    CHECK_EQ(n_packet, len + 8u);
    CHECK_EQ(sg_get_u32(packet + 4 + len), sg_crc32(0, packet, 4 + len));
    memcpy(g_reply, packet + 4, len);
    g_reply_len = len;
    return (int8_t)g_reply[0];
}

static void test_hello_and_cache(void)
{
    uint8_t p[8];
    static uint8_t first[SG_PROTO_PACKET_MAX];
    size_t first_len;
    sg_put_u16(p, 1);
    CHECK_EQ(request(SG_OP_HELLO, 0, p, 2), SG_DEV_OK);
    CHECK_EQ(sg_get_u16(g_reply + 1), SG_PROTO_VERSION);
    CHECK_EQ(sg_get_u32(g_reply + 3), SG_CAP_MODEL | SG_CAP_STREAM | SG_CAP_FIRMWARE | SG_CAP_BAUD);
    CHECK_EQ(sg_get_u16(g_reply + 7), SG_PROTO_MAX_PAYLOAD);
    check_bytes(g_reply + 9, 8, (const uint8_t *)"TESTUNIT", 8, "device id");
    CHECK_EQ(sg_get_u32(g_reply + 17), SG_FW_VERSION);
    CHECK_EQ(g_reply[21], 4);
    check_bytes(g_reply + 22, g_reply_len - 22, (const uint8_t *)"test", 4, "board name");
    CHECK_EQ(request(SG_OP_HELLO, 1, p, 1), SG_DEV_ERR_FRAME);

    CHECK_EQ(request(0x7E, 2, NULL, 0), SG_DEV_ERR_OP);
    CHECK_EQ(request(SG_OP_INFO, 3, p, 1), SG_DEV_ERR_FRAME);

    /* Exactly once: a resend (the same seq and bytes) gets the stored reply... */
    CHECK_EQ(request(SG_OP_INFO, 4, NULL, 0), SG_DEV_OK);
    CHECK_EQ(g_reply[1], 0xFF); /* no model */
    memcpy(first, g_raw, g_raw_len);
    first_len = g_raw_len;
    {
        uint8_t frame[64];
        const uint8_t *out;
        size_t n = make_frame(SG_OP_INFO, 4, NULL, 0, 0, frame);
        sg_test_uart_take();
        sg_app_receive(frame, n);
        out = sg_test_uart_output(&n);
        check_bytes(out, n, first, first_len, "resent request answered from the cache");
    }
    {   /* (the uptime in INFO's reply ticks: a second execution would differ) */
        static uint8_t info[SG_PROTO_PACKET_MAX];
        size_t info_len;
        CHECK_EQ(request(SG_OP_INFO, 4, NULL, 0), SG_DEV_OK);
        memcpy(info, g_reply, g_reply_len);
        info_len = g_reply_len;
        /* ...while another request with that seq (a client that never said HELLO) runs */
        CHECK_EQ(request(SG_OP_STATS, 4, NULL, 0), SG_DEV_OK);
        CHECK_EQ(g_reply_len, 1u + 25u + 12u); /* status, then STATS without hidden stages */
        memcpy(first, info, info_len);
        first_len = info_len;
    }
    /* HELLO clears it: INFO with seq 4 runs again after a HELLO (uptime ticks on this board). */
    CHECK_EQ(request(SG_OP_HELLO, 4, p, 2), SG_DEV_OK);
    CHECK_EQ(request(SG_OP_INFO, 4, NULL, 0), SG_DEV_OK);
    CHECK(sg_get_u32(g_reply + g_reply_len - 4) != sg_get_u32(first + first_len - 4));

    /* STATS counts dropped frames. */
    {
        uint8_t bad[64];
        size_t n = make_frame(SG_OP_INFO, 5, NULL, 0, 0xFFu, bad);
        sg_app_receive(bad, n);
        sg_app_receive(bad, n);
    }
    CHECK_EQ(request(SG_OP_STATS, 6, NULL, 0), SG_DEV_OK);
    CHECK_EQ(g_reply[25], 0); /* no hidden stages without a model */
    CHECK_EQ(sg_get_u32(g_reply + 30), 2);
}

static void test_uploads(void)
{
    static uint8_t data[3000];
    uint8_t p[16 + 1024];
    uint32_t crc, off;
    size_t i;
    for (i = 0; i < sizeof data; ++i) {
        data[i] = (uint8_t)(i * 7u + 3u);
    }
    crc = sg_crc32(0, data, sizeof data);

    CHECK_EQ(request(SG_OP_MODEL_DATA, 10, p, 4), SG_DEV_ERR_STATE); /* before BEGIN */
    CHECK_EQ(request(SG_OP_MODEL_END, 11, NULL, 0), SG_DEV_ERR_STATE);
    CHECK_EQ(request(SG_OP_MODEL_ACTIVATE, 12, NULL, 0), SG_DEV_ERR_STATE);

    sg_put_u32(p, SG_TEST_SLOT_SIZE - SG_SLOT_HEADER_SIZE + 1u);
    sg_put_u32(p + 4, 0);
    CHECK_EQ(request(SG_OP_MODEL_BEGIN, 13, p, 8), SG_DEV_ERR_TOO_BIG);

    sg_put_u32(p, sizeof data);
    sg_put_u32(p + 4, crc);
    CHECK_EQ(request(SG_OP_MODEL_BEGIN, 14, p, 8), SG_DEV_OK);
    CHECK_EQ(g_reply[1], 0);
    CHECK_EQ(sg_get_u32(g_reply + 2), 0);
    for (off = 0; off < 2000; off += 1000) {
        sg_put_u32(p, off);
        memcpy(p + 4, data + off, 1000);
        CHECK_EQ(request(SG_OP_MODEL_DATA, (uint8_t)(15 + off / 1000), p, 1004), SG_DEV_OK);
        CHECK_EQ(sg_get_u32(g_reply + 1), off + 1000);
    }
    /* ERR_OFFSET names the expected offset. */
    sg_put_u32(p, 1000);
    CHECK_EQ(request(SG_OP_MODEL_DATA, 17, p, 1004), SG_DEV_ERR_OFFSET);
    CHECK_EQ(sg_get_u32(g_reply + 1), 2000);
    /* END before all bytes. */
    CHECK_EQ(request(SG_OP_MODEL_END, 18, NULL, 0), SG_DEV_ERR_STATE);
    /* A failing program is ERR_FLASH and nothing is counted as stored. */
    sg_test_fail_programs(1);
    sg_put_u32(p, 2000);
    memcpy(p + 4, data + 2000, 1000);
    CHECK_EQ(request(SG_OP_MODEL_DATA, 19, p, 1004), SG_DEV_ERR_FLASH);
    /* BEGIN again with the same size and crc resumes. */
    sg_put_u32(p, sizeof data);
    sg_put_u32(p + 4, crc);
    CHECK_EQ(request(SG_OP_MODEL_BEGIN, 20, p, 8), SG_DEV_OK);
    CHECK_EQ(sg_get_u32(g_reply + 2), 2000);
    sg_put_u32(p, 2000);
    memcpy(p + 4, data + 2000, 1000);
    CHECK_EQ(request(SG_OP_MODEL_DATA, 21, p, 1004), SG_DEV_OK);
    /* More than announced. */
    sg_put_u32(p, 3000);
    CHECK_EQ(request(SG_OP_MODEL_DATA, 22, p, 5), SG_DEV_ERR_ARG);
    /* Not an .sgm: the runtime's status (SG_ERR_MAGIC) and the offset of the bad field. */
    CHECK_EQ(request(SG_OP_MODEL_END, 23, NULL, 0), SG_DEV_ERR_MODEL);
    CHECK_EQ((int16_t)sg_get_u16(g_reply + 1), SG_ERR_MAGIC);
    CHECK_EQ(sg_get_u32(g_reply + 3), 0);
    CHECK_EQ(request(SG_OP_MODEL_ACTIVATE, 24, NULL, 0), SG_DEV_ERR_STATE);
    /* A wrong CRC at BEGIN: ERR_VERIFY. */
    sg_put_u32(p, sizeof data);
    sg_put_u32(p + 4, crc ^ 1u);
    CHECK_EQ(request(SG_OP_MODEL_BEGIN, 25, p, 8), SG_DEV_OK);
    CHECK_EQ(sg_get_u32(g_reply + 2), 0); /* another crc: a fresh upload */
    for (off = 0; off < sizeof data; off += 1000) {
        sg_put_u32(p, off);
        memcpy(p + 4, data + off, 1000);
        CHECK_EQ(request(SG_OP_MODEL_DATA, (uint8_t)(26 + off / 1000), p, 1004), SG_DEV_OK);
    }
    CHECK_EQ(request(SG_OP_MODEL_END, 29, NULL, 0), SG_DEV_ERR_VERIFY);
    /* Read back what the slot holds. */
    p[0] = 0;
    sg_put_u32(p + 1, 100);
    sg_put_u16(p + 5, 50);
    CHECK_EQ(request(SG_OP_MODEL_READ, 30, p, 7), SG_DEV_OK);
    check_bytes(g_reply + 1, g_reply_len - 1, data + 100, 50, "MODEL_READ");
    p[0] = 2;
    CHECK_EQ(request(SG_OP_MODEL_READ, 31, p, 7), SG_DEV_ERR_ARG);
    /* Roll back: no such slot (ERR_ARG); an empty slot is refused (ERR_SLOT), not activated. */
    p[0] = 2;
    CHECK_EQ(request(SG_OP_MODEL_SELECT, 90, p, 1), SG_DEV_ERR_ARG);
    p[0] = 0;
    CHECK_EQ(request(SG_OP_MODEL_SELECT, 91, p, 1), SG_DEV_ERR_SLOT);
    p[0] = 1;
    CHECK_EQ(request(SG_OP_MODEL_SELECT, 92, p, 1), SG_DEV_ERR_SLOT);
    CHECK_EQ(request(SG_OP_MODEL_SELECT, 93, p, 0), SG_DEV_ERR_FRAME);

    /* Firmware: received and verified like a model; junk is not an image. */
    sg_put_u32(p, 1000);
    sg_put_u32(p + 4, sg_crc32(0, data, 1000));
    CHECK_EQ(request(SG_OP_FW_BEGIN, 32, p, 8), SG_DEV_OK);
    sg_put_u32(p, 0);
    memcpy(p + 4, data, 1000);
    CHECK_EQ(request(SG_OP_FW_DATA, 33, p, 1004), SG_DEV_OK);
    CHECK_EQ(request(SG_OP_FW_END, 34, NULL, 0), SG_DEV_ERR_IMAGE);
    CHECK_EQ(request(SG_OP_FW_ACTIVATE, 35, NULL, 0), SG_DEV_ERR_STATE);

    /* Streaming needs a model. */
    p[0] = 1;
    CHECK_EQ(request(SG_OP_STREAM_START, 36, p, 1), SG_DEV_ERR_NO_MODEL);
    CHECK_EQ(request(SG_OP_STREAM_STEPS, 37, p, 1), SG_DEV_ERR_NO_MODEL);
    CHECK_EQ(request(SG_OP_PREDICT, 38, NULL, 0), SG_DEV_ERR_NO_MODEL);

    /* SET_BAUD: replied, then applied; 0 is out of range. */
    sg_put_u32(p, 0);
    CHECK_EQ(request(SG_OP_SET_BAUD, 39, p, 4), SG_DEV_ERR_ARG);
    sg_put_u32(p, 921600);
    CHECK_EQ(request(SG_OP_SET_BAUD, 40, p, 4), SG_DEV_OK);
}

static void test_reset(void)
{
    volatile int replied = 0;
    unsigned before = sg_test_resets;
    sg_test_reset_armed = 1;
    if (setjmp(sg_test_reset_point) == 0) {
        request(SG_OP_RESET, 50, NULL, 0);
        replied = 1; /* not reached: the reset jumps out */
    }
    sg_test_reset_armed = 0;
    CHECK_EQ(replied, 0);
    CHECK_EQ(sg_test_resets, before + 1u);
    {
        size_t n;
        sg_test_uart_output(&n);
        CHECK(n > 0u); /* the reply left before the reset */
    }
    sg_app_init();
    /* After a reset the cache is empty: seq 50 executes again (INFO, not the RESET reply). */
    CHECK_EQ(request(SG_OP_INFO, 50, NULL, 0), SG_DEV_OK);
    CHECK(g_reply_len > 40u);
}

/* ---------------------------------------------------------------- review (H12) */

/* SET_BAUD to a rate the board cannot set is refused, not answered OK and then ignored
 * (the host would switch to it and lose the device). */
static void test_set_baud_unsupported_rate(void)
{
    uint8_t p[4];
    CHECK_EQ(sg_test_uart_baud(), 115200u);
    sg_put_u32(p, 12345u); /* not a rate of this board */
    CHECK_EQ(request(SG_OP_SET_BAUD, 60, p, 4), SG_DEV_ERR_UNSUPPORTED);
    CHECK_EQ(sg_test_uart_baud(), 115200u);
    sg_put_u32(p, 921600u);
    CHECK_EQ(request(SG_OP_SET_BAUD, 61, p, 4), SG_DEV_OK);
    CHECK_EQ(sg_test_uart_baud(), 921600u);
    sg_put_u32(p, 12345u); /* the probe goes back to the rate in use, not the boot rate */
    CHECK_EQ(request(SG_OP_SET_BAUD, 62, p, 4), SG_DEV_ERR_UNSUPPORTED);
    CHECK_EQ(sg_test_uart_baud(), 921600u);
    sg_put_u32(p, 115200u);
    CHECK_EQ(request(SG_OP_SET_BAUD, 63, p, 4), SG_DEV_OK);
    CHECK_EQ(sg_test_uart_baud(), 115200u);
}

/* A DATA chunk that reads back wrong cannot be programmed again over the same bytes:
 * BEGIN after ERR_FLASH must erase and start at 0, not resume onto the bad chunk. */
static void test_flash_readback_failure_restarts_upload(void)
{
    static uint8_t data[2000];
    uint8_t p[8 + 1000];
    uint32_t crc, off;
    size_t i;
    for (i = 0; i < sizeof data; ++i) {
        data[i] = (uint8_t)(i * 13u + 1u) | 1u; /* bit 0 set everywhere: the corruption shows */
    }
    crc = sg_crc32(0, data, sizeof data);
    sg_put_u32(p, sizeof data);
    sg_put_u32(p + 4, crc);
    CHECK_EQ(request(SG_OP_MODEL_BEGIN, 70, p, 8), SG_DEV_OK);
    CHECK_EQ(sg_get_u32(g_reply + 2), 0);
    sg_put_u32(p, 0);
    memcpy(p + 4, data, 1000);
    CHECK_EQ(request(SG_OP_MODEL_DATA, 71, p, 1004), SG_DEV_OK);
    sg_test_corrupt_programs(1);
    sg_put_u32(p, 1000);
    memcpy(p + 4, data + 1000, 1000);
    CHECK_EQ(request(SG_OP_MODEL_DATA, 72, p, 1004), SG_DEV_ERR_FLASH);
    sg_put_u32(p, sizeof data);
    sg_put_u32(p + 4, crc);
    CHECK_EQ(request(SG_OP_MODEL_BEGIN, 73, p, 8), SG_DEV_OK);
    CHECK_EQ(sg_get_u32(g_reply + 2), 0); /* erased: a fresh start */
    for (off = 0; off < sizeof data; off += 1000) {
        sg_put_u32(p, off);
        memcpy(p + 4, data + off, 1000);
        CHECK_EQ(request(SG_OP_MODEL_DATA, (uint8_t)(74 + off / 1000), p, 1004), SG_DEV_OK);
    }
    p[0] = 0;
    sg_put_u32(p + 1, 1000);
    sg_put_u16(p + 5, 1000);
    CHECK_EQ(request(SG_OP_MODEL_READ, 76, p, 7), SG_DEV_OK);
    check_bytes(g_reply + 1, g_reply_len - 1, data + 1000, 1000, "chunk after a read-back failure");
}

/* An image larger than the primary region cannot run there: FW_BEGIN refuses it, instead of
 * a verified upload that the bootloader can only revert after a backup and a failed copy. */
static void test_fw_larger_than_primary(void)
{
    uint8_t p[8];
    sg_put_u32(p, 48u * 1024u + 1u); /* fits the 64 KB secondary, not the 48 KB primary */
    sg_put_u32(p + 4, 0);
    CHECK_EQ(request(SG_OP_FW_BEGIN, 80, p, 8), SG_DEV_ERR_TOO_BIG);
    sg_put_u32(p, 48u * 1024u);
    CHECK_EQ(request(SG_OP_FW_BEGIN, 81, p, 8), SG_DEV_OK);
    CHECK_EQ(sg_get_u32(g_reply + 1), 0);
}

/* The boot-selection record (PROTOCOL.md 3.2): which slot is active, what generation a new
 * model gets, and the record in the boot-control sectors (kept by every boot-control write,
 * the bootloader's too; the boot-control record commits it). Truth: the rule written out. */
static void test_model_selection(void)
{
    sg_slot_info s[SG_SLOT_COUNT] = {{1, 1, 100, 0}, {1, 2, 100, 0}};
    sg_model_sel sel = {1, 0, 1, 2}, got;
    sg_bootctl_record rec;
    const uint32_t bc = 16u * 1024u; /* the test board's boot_ctl[0] */
    CHECK_EQ(sg_slots_pick(s, NULL), 1);                   /* the newest */
    CHECK_EQ(sg_slots_pick(s, &sel), 0);                   /* rolled back: A, B kept */
    CHECK_EQ(sg_slots_next_generation(s, &sel), 3u);
    s[1].valid = 0;                                        /* B erased by the next upload */
    CHECK_EQ(sg_slots_pick(s, &sel), 0);
    CHECK_EQ(sg_slots_next_generation(s, &sel), 3u);       /* ahead of the record's newest, not 2 */
    s[1].valid = 1;
    s[1].generation = 3;                                   /* the new upload activated: it wins */
    CHECK_EQ(sg_slots_pick(s, &sel), 1);
    s[1].generation = 2;
    s[0].generation = 7;                                   /* A is another model now */
    CHECK_EQ(sg_slots_pick(s, &sel), 0);                   /* 7 is the newest anyway */
    sel.slot = 1;
    sel.generation = 2;
    sel.newest = 7;
    CHECK_EQ(sg_slots_pick(s, &sel), 1);
    s[0].generation = 0xFFFFFFFFu;                         /* counters wrap: 0 is ahead of 0xFFFFFFFF */
    s[1].generation = 0u;
    sel.valid = 0;
    CHECK_EQ(sg_slots_pick(s, &sel), 1);
    CHECK_EQ(sg_slots_next_generation(s, &sel), 1u);
    sel.slot = 5;
    sel.valid = 1;
    CHECK_EQ(sg_slots_pick(s, &sel), 1);                   /* no such slot: ignored */

    /* In flash: none at first; written, read back; a boot-control write keeps it. */
    sg_test_board_wipe();
    sg_bootctl_model_sel(&got);
    CHECK_EQ(got.valid, 0);
    sel.slot = 0;
    sel.generation = 1;
    sel.newest = 2;
    CHECK_EQ(sg_bootctl_select_model(&sel), 0);
    sg_bootctl_model_sel(&got);
    CHECK(got.valid && got.slot == 0 && got.generation == 1 && got.newest == 2);
    CHECK_EQ(sg_get_u32(sg_test_flash() + bc + SG_MODELSEL_SECTOR_OFFSET + SG_MODELSEL_OFF_MAGIC), SG_MODELSEL_MAGIC);
    CHECK_EQ(sg_bootctl_write(SG_BOOT_PENDING), 0);        /* the bootloader's and FW_ACTIVATE's write */
    CHECK_EQ(sg_bootctl_read(&rec), 0);
    CHECK(rec.state == SG_BOOT_PENDING && rec.sector == 1 && rec.sel.valid && rec.sel.slot == 0);
    CHECK_EQ(sg_bootctl_write(SG_BOOT_IDLE), 0);
    sel.slot = 1;
    sel.generation = 2;
    CHECK_EQ(sg_bootctl_select_model(&sel), 0);            /* into sector 1; sector 0 keeps slot 0 */
    CHECK_EQ(sg_bootctl_read(&rec), 0);
    CHECK(rec.sector == 1 && rec.state == SG_BOOT_IDLE && rec.sel.slot == 1);
    /* A write cut before its boot-control record was complete: the older pair holds. */
    sg_test_flash()[bc + 4096u + SG_BOOTCTL_OFF_CRC] ^= 1u;
    sg_bootctl_model_sel(&got);
    CHECK(got.valid && got.slot == 0 && got.generation == 1);
    /* A failed program: an error, and the choice before it stays. */
    sg_test_fail_programs(1);
    CHECK_EQ(sg_bootctl_select_model(&sel), -1);
    sg_bootctl_model_sel(&got);
    CHECK(got.valid && got.slot == 0);
}

int main(void)
{
    sg_test_board_wipe();
    test_cobs_vectors();
    test_frame_checks();
    sg_app_init();
    test_hello_and_cache();
    test_uploads();
    test_reset();
    sg_test_board_wipe();
    sg_app_init();
    test_set_baud_unsupported_rate();
    test_flash_readback_failure_restarts_upload();
    test_fw_larger_than_primary();
    test_model_selection();
    printf("test_proto: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
