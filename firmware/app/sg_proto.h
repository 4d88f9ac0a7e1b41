/* SPDX-License-Identifier: MIT */
/*
 * Protocol framing on the device side (docs/PROTOCOL.md section 1): a streaming COBS
 * decoder fed byte by byte into one frame buffer, the frame checks (size, len, CRC-32),
 * the reply encoder, and the exactly-once reply cache keyed on seq and request CRC.
 */
#ifndef SG_PROTO_H
#define SG_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "sg_proto_ops.h"

/** Largest packet: header, payload, CRC. */
#define SG_PROTO_PACKET_MAX (SG_PROTO_HEADER_SIZE + SG_PROTO_MAX_PAYLOAD + SG_PROTO_CRC_SIZE)
/** Largest encoded frame: COBS adds one byte per 254 and one up front, then the 0x00. */
#define SG_PROTO_FRAME_MAX (SG_PROTO_PACKET_MAX + SG_PROTO_PACKET_MAX / 254u + 2u)

/** Receiver state: the packet decoded so far and the drop counters. */
typedef struct sg_proto_rx {
    uint8_t buf[SG_PROTO_PACKET_MAX]; /**< decoded packet bytes */
    size_t n;                 /**< bytes in buf */
    uint8_t remaining;        /**< data bytes left in the current COBS block */
    uint8_t zero_pending;     /**< the current block ends with an implied zero */
    uint8_t bad;              /**< this frame is already lost (overflow): drop at its end */
    uint8_t in_frame;         /**< at least one byte of the current frame arrived */
    uint32_t frames_ok;       /**< frames that passed every check */
    uint32_t frames_dropped;  /**< frames dropped (COBS error, size, len, CRC, too long) */
} sg_proto_rx;

/** A checked request, pointing into the receiver's buffer (valid until the next byte). */
typedef struct sg_proto_frame {
    uint8_t op;
    uint8_t seq;
    uint16_t len;
    const uint8_t *payload;
    uint32_t crc;       /**< the frame's CRC-32: with seq, what identifies a resend */
} sg_proto_frame;

/** Forget any partial frame and zero the counters. */
void sg_proto_rx_init(sg_proto_rx *rx);

/**
 * Feed one received byte. Returns 1 when it completed a frame that passed every check
 * (then @p frame is filled), 0 otherwise. Failed frames are counted in frames_dropped;
 * an empty frame (a lone 0x00, the host's resync) is neither counted nor returned.
 */
int sg_proto_rx_byte(sg_proto_rx *rx, uint8_t byte, sg_proto_frame *frame);

/**
 * COBS-encode @p n bytes of @p in into @p out followed by the 0x00 delimiter.
 * @p out must hold n + n / 254 + 2 bytes. Returns the bytes written.
 */
size_t sg_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);

/**
 * Complete a reply packet in place and encode it: @p packet holds the payload at
 * offset SG_PROTO_HEADER_SIZE (@p len bytes, status first) and room for the CRC;
 * the header and CRC are written here. Returns the frame length in @p out
 * (SG_PROTO_FRAME_MAX bytes), 0 if len is too large.
 */
size_t sg_proto_encode_reply(uint8_t op, uint8_t seq, uint8_t *packet, size_t len, uint8_t *out);

/** The last executed request's seq and CRC and its encoded reply (exactly-once delivery). */
typedef struct sg_proto_cache {
    uint8_t valid;
    uint8_t seq;
    uint32_t crc;
    size_t n;
    uint8_t frame[SG_PROTO_FRAME_MAX];
} sg_proto_cache;

/** Forget the stored reply (HELLO, boot). */
void sg_proto_cache_clear(sg_proto_cache *cache);

/** The stored reply of a resend (same @p seq and request @p crc as the last executed
 *  request), or NULL when the request must be executed. */
const uint8_t *sg_proto_cache_lookup(const sg_proto_cache *cache, uint8_t seq, uint32_t crc, size_t *n);

/** Remember @p n bytes of encoded reply for the request @p seq with CRC @p crc. */
void sg_proto_cache_store(sg_proto_cache *cache, uint8_t seq, uint32_t crc, const uint8_t *frame, size_t n);

/* Little-endian field access for payloads. */
static inline uint16_t sg_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t sg_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void sg_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void sg_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void sg_put_u64(uint8_t *p, uint64_t v)
{
    sg_put_u32(p, (uint32_t)v);
    sg_put_u32(p + 4, (uint32_t)(v >> 32));
}

#endif /* SG_PROTO_H */
