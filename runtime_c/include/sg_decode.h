/* SPDX-License-Identifier: MIT */
/**
 * @file sg_decode.h
 * @brief Event-file decoders (Prophesee EVT 2.0 / EVT 3.0, AEDAT 3.1 polarity packets,
 *        uncompressed AEDAT 4 event packets), bit-exact with the numpy reference in
 *        pysg.io.evt / pysg.io.aedat31 / pysg.io.aedat4. AEDAT 4 packets are decompressed
 *        by the host (python-lz4 / zstandard) before sg_aedat4_decode_events().
 *
 * C99, no heap, single pass. Input words are read byte by byte as little-endian (any
 * alignment, any host endianness). Output is an array of packed 13-byte records laid
 * out as pysg.events.EVENT_DTYPE: uint16 x (LE) at 0, uint16 y at 2, int64 t at 4,
 * uint8 p at 12 (SG_EVENT_RECORD_SIZE bytes each, no padding).
 *
 * The EVT decoders are stateful: the state carries the last y, time and vector base x
 * across calls, so decoding a stream in pieces gives the events of one call on the
 * whole stream. Events before the first ADDR_Y / TIME_HIGH / TIME_LOW (EVT 3.0), or
 * the first TIME_HIGH (EVT 2.0), are dropped; TIME_HIGH is unwrapped whenever it goes
 * backwards. A call stops early (at a word boundary, state consistent) when the output
 * could overflow; @c *n_used tells how many words were consumed.
 */
#ifndef SG_DECODE_H
#define SG_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "sg_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes of one output record (EVENT_DTYPE: x u2, y u2, t i8, p u1, packed). */
#define SG_EVENT_RECORD_SIZE 13

/** EVT 3.0 decoder state; -1 = not seen yet. Initialise with sg_evt3_state_init(). */
typedef struct sg_evt3_state {
    int64_t y;         /**< last ADDR_Y */
    int64_t time_low;  /**< last TIME_LOW (0 after a TIME_HIGH) */
    int64_t time_high; /**< last TIME_HIGH, unwrapped (wrap count << 12 included) */
    int64_t raw_high;  /**< last raw 12-bit TIME_HIGH, for wrap detection */
    int64_t base_x;    /**< vector base x, advanced past earlier vectors */
    int64_t pol;       /**< polarity of the last VECT_BASE_X (0 initially) */
} sg_evt3_state;

/** EVT 2.0 decoder state; -1 = not seen yet. */
typedef struct sg_evt2_state {
    int64_t time_high; /**< last TIME_HIGH, unwrapped (wrap count << 28 included) */
    int64_t raw_high;  /**< last raw 28-bit TIME_HIGH */
} sg_evt2_state;

/** Reset @p state to "nothing seen" (SG_ERR_ARG on NULL). */
sg_status sg_evt3_state_init(sg_evt3_state *state);
/** Reset @p state to "nothing seen" (SG_ERR_ARG on NULL). */
sg_status sg_evt2_state_init(sg_evt2_state *state);

/**
 * Decode EVT 3.0 16-bit words.
 * @param[in,out] state     decoder state, carried across calls
 * @param[in]     data      n_words little-endian 16-bit words
 * @param[in]     n_words   number of words
 * @param[in]     t0        added to every timestamp
 * @param[out]    out       capacity records of SG_EVENT_RECORD_SIZE bytes
 * @param[in]     capacity  records available in @p out; decoding stops before a word
 *                          when fewer than 12 remain (a vector yields up to 12)
 * @param[out]    n_used    words consumed (== n_words unless the output filled up)
 * @param[out]    n_events  records written
 * @return SG_OK, SG_ERR_ARG on NULL pointers.
 */
sg_status sg_evt3_decode(sg_evt3_state *state, const uint8_t *data, size_t n_words, int64_t t0,
                         uint8_t *out, size_t capacity, size_t *n_used, size_t *n_events);

/**
 * Decode EVT 2.0 32-bit words (at most one event per word).
 * Same arguments as sg_evt3_decode(); stops when @p out is full.
 */
sg_status sg_evt2_decode(sg_evt2_state *state, const uint8_t *data, size_t n_words, int64_t t0,
                         uint8_t *out, size_t capacity, size_t *n_used, size_t *n_events);

/**
 * Decode the polarity events of one AEDAT 3.1 packet (8-byte records: uint32 data with
 * bit 0 valid, bit 1 polarity, bits 2..16 y, bits 17..31 x; int32 timestamp).
 * t = (ts_overflow << 31) | timestamp.
 * @param[in]  records          n records of 8 bytes
 * @param[in]  n                number of records
 * @param[in]  ts_overflow      the packet's eventTSOverflow (>= 0)
 * @param[in]  include_invalid  nonzero: keep records whose valid bit is 0
 * @param[out] out              at least n records of SG_EVENT_RECORD_SIZE bytes
 * @param[out] n_events         records written
 * @param[out] bad_index        on SG_ERR_VALUE: index of the first kept record with a
 *                              negative timestamp
 * @return SG_OK, SG_ERR_VALUE (negative timestamp), SG_ERR_ARG (NULL pointer).
 */
sg_status sg_aedat31_decode_polarity(const uint8_t *records, size_t n, int64_t ts_overflow,
                                     int include_invalid, uint8_t *out, size_t *n_events,
                                     size_t *bad_index);

/** Bytes of one AEDAT 4 event struct (int64 t, int16 x, int16 y, uint8 p, 3 bytes pad). */
#define SG_AEDAT4_EVENT_SIZE 16

/**
 * Decode one uncompressed AEDAT 4 event packet (size-prefixed flatbuffer: uint32 length,
 * root table whose field 0 is a vector of SG_AEDAT4_EVENT_SIZE-byte event structs) into
 * EVENT_DTYPE records, with the checks of pysg.io.aedat4._decode_packet in its order.
 * @param[in]  packet    size bytes
 * @param[in]  size      bytes of @p packet
 * @param[out] out       capacity records of SG_EVENT_RECORD_SIZE bytes (may be NULL if 0)
 * @param[in]  capacity  records available in @p out
 * @param[out] n_events  records written; on SG_ERR_ARENA the number needed
 * @param[out] err_at    on SG_ERR_BLOB: byte offset in @p packet of the bad structure
 *                       (the numpy reference's "uncompressed offset"); on SG_ERR_VALUE: index
 *                       of the first event with t < 0, x < 0, y < 0 or polarity > 1
 * @return SG_OK, SG_ERR_BLOB, SG_ERR_VALUE, SG_ERR_ARENA (@p out too small, nothing
 *         written), SG_ERR_ARG (NULL pointer).
 */
sg_status sg_aedat4_decode_events(const uint8_t *packet, size_t size, uint8_t *out, size_t capacity,
                                  size_t *n_events, uint64_t *err_at);

#ifdef __cplusplus
}
#endif

#endif /* SG_DECODE_H */
