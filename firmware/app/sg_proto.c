/* SPDX-License-Identifier: MIT */
/* Device-side framing: streaming COBS decoder, frame checks, reply encoder, reply cache. */
#include "sg_proto.h"

#include <string.h>

#include "sg_runtime.h"

void sg_proto_rx_init(sg_proto_rx *rx)
{
    memset(rx, 0, sizeof *rx);
}

static void rx_restart(sg_proto_rx *rx)
{
    rx->n = 0;
    rx->remaining = 0;
    rx->zero_pending = 0;
    rx->bad = 0;
    rx->in_frame = 0;
}

static void rx_append(sg_proto_rx *rx, uint8_t byte)
{
    if (rx->n >= sizeof rx->buf) {
        rx->bad = 1; /* longer than any valid packet: drop it at its delimiter */
        return;
    }
    rx->buf[rx->n++] = byte;
}

/* The checks of PROTOCOL.md section 1 on a decoded packet. */
static int rx_check(const sg_proto_rx *rx, sg_proto_frame *frame)
{
    uint16_t len;
    if (rx->n < SG_PROTO_HEADER_SIZE + SG_PROTO_CRC_SIZE) {
        return 0;
    }
    len = sg_get_u16(rx->buf + SG_PROTO_OFF_LEN);
    if (len > SG_PROTO_MAX_PAYLOAD || rx->n != (size_t)len + SG_PROTO_HEADER_SIZE + SG_PROTO_CRC_SIZE) {
        return 0;
    }
    if (sg_crc32(0, rx->buf, SG_PROTO_HEADER_SIZE + (size_t)len)
        != sg_get_u32(rx->buf + SG_PROTO_HEADER_SIZE + len)) {
        return 0;
    }
    frame->op = rx->buf[SG_PROTO_OFF_OP];
    frame->seq = rx->buf[SG_PROTO_OFF_SEQ];
    frame->len = len;
    frame->payload = rx->buf + SG_PROTO_HEADER_SIZE;
    frame->crc = sg_get_u32(rx->buf + SG_PROTO_HEADER_SIZE + len);
    return 1;
}

int sg_proto_rx_byte(sg_proto_rx *rx, uint8_t byte, sg_proto_frame *frame)
{
    if (byte == 0u) {
        int ok;
        if (!rx->in_frame) {
            return 0; /* a lone delimiter: the host's resync, not a frame */
        }
        /* A block cut short by the delimiter is a COBS error; the last implied zero is not data. */
        ok = !rx->bad && rx->remaining == 0u && rx_check(rx, frame);
        if (ok) {
            rx->frames_ok++;
        } else {
            rx->frames_dropped++;
        }
        rx_restart(rx);
        return ok;
    }
    rx->in_frame = 1;
    if (rx->bad) {
        return 0;
    }
    if (rx->remaining == 0u) { /* a code byte */
        if (rx->zero_pending) {
            rx_append(rx, 0);
        }
        rx->remaining = (uint8_t)(byte - 1u);
        rx->zero_pending = byte != 0xFFu;
    } else {
        rx_append(rx, byte);
        rx->remaining--;
    }
    return 0;
}

size_t sg_cobs_encode(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t code_at = 0, o = 1, i;
    uint8_t code = 1;
    for (i = 0; i < n; ++i) {
        if (in[i] == 0u) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        } else {
            out[o++] = in[i];
            /* A full block; the next one starts only if bytes follow (no empty last block). */
            if (++code == 0xFFu && i + 1u < n) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    out[o++] = 0u;
    return o;
}

size_t sg_proto_encode_reply(uint8_t op, uint8_t seq, uint8_t *packet, size_t len, uint8_t *out)
{
    uint32_t crc;
    if (len > SG_PROTO_MAX_PAYLOAD) {
        return 0;
    }
    packet[SG_PROTO_OFF_OP] = (uint8_t)(op | SG_PROTO_REPLY_BIT);
    packet[SG_PROTO_OFF_SEQ] = seq;
    sg_put_u16(packet + SG_PROTO_OFF_LEN, (uint16_t)len);
    crc = sg_crc32(0, packet, SG_PROTO_HEADER_SIZE + len);
    sg_put_u32(packet + SG_PROTO_HEADER_SIZE + len, crc);
    return sg_cobs_encode(packet, SG_PROTO_HEADER_SIZE + len + SG_PROTO_CRC_SIZE, out);
}

void sg_proto_cache_clear(sg_proto_cache *cache)
{
    cache->valid = 0;
    cache->n = 0;
}

const uint8_t *sg_proto_cache_lookup(const sg_proto_cache *cache, uint8_t seq, uint32_t crc, size_t *n)
{
    /* seq alone would answer another client's request (one that never said HELLO) with
     * a stored reply; a resend is the same bytes, so its CRC matches as well */
    if (!cache->valid || cache->seq != seq || cache->crc != crc) {
        return NULL;
    }
    *n = cache->n;
    return cache->frame;
}

void sg_proto_cache_store(sg_proto_cache *cache, uint8_t seq, uint32_t crc, const uint8_t *frame, size_t n)
{
    if (n > sizeof cache->frame) {
        cache->valid = 0;
        return;
    }
    if (frame != cache->frame) { /* the app may encode straight into the cache */
        memcpy(cache->frame, frame, n);
    }
    cache->n = n;
    cache->seq = seq;
    cache->crc = crc;
    cache->valid = 1;
}
