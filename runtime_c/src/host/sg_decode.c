/* SPDX-License-Identifier: MIT */
/* Event-file decoders, bit-exact with pysg.io.evt / aedat31 / aedat4 (see sg_decode.h). */
#include "sg_decode.h"

#include <string.h> /* memcpy: required even of freestanding C by GCC and clang */

static void sg_put_event(uint8_t *r, uint16_t x, uint16_t y, uint64_t u, uint8_t p)
{
    r[0] = (uint8_t)x;
    r[1] = (uint8_t)(x >> 8);
    r[2] = (uint8_t)y;
    r[3] = (uint8_t)(y >> 8);
    r[4] = (uint8_t)u;
    r[5] = (uint8_t)(u >> 8);
    r[6] = (uint8_t)(u >> 16);
    r[7] = (uint8_t)(u >> 24);
    r[8] = (uint8_t)(u >> 32);
    r[9] = (uint8_t)(u >> 40);
    r[10] = (uint8_t)(u >> 48);
    r[11] = (uint8_t)(u >> 56);
    r[12] = p;
}

/* Unwrapped TIME_HIGH after a raw value of `bits` bits: one wrap per decrease. */
static int64_t sg_unwrap_high(int64_t time_high, int64_t raw_high, int64_t raw, int bits)
{
    int64_t loops;
    if (time_high < 0) {
        return raw;
    }
    loops = (time_high >> bits) + (raw < raw_high ? 1 : 0);
    return (int64_t)(((uint64_t)loops << bits) | (uint64_t)raw);
}

sg_status sg_evt3_state_init(sg_evt3_state *state)
{
    if (state == NULL) {
        return SG_ERR_ARG;
    }
    state->y = -1;
    state->time_low = -1;
    state->time_high = -1;
    state->raw_high = -1;
    state->base_x = -1;
    state->pol = 0;
    return SG_OK;
}

sg_status sg_evt2_state_init(sg_evt2_state *state)
{
    if (state == NULL) {
        return SG_ERR_ARG;
    }
    state->time_high = -1;
    state->raw_high = -1;
    return SG_OK;
}

sg_status sg_evt3_decode(sg_evt3_state *state, const uint8_t *data, size_t n_words, int64_t t0,
                         uint8_t *out, size_t capacity, size_t *n_used, size_t *n_events)
{
    size_t i;
    size_t k = 0;
    int64_t y, tl, th, rh, bx, pol;
    if (state == NULL || n_used == NULL || n_events == NULL || (n_words && data == NULL) ||
        (capacity && out == NULL)) {
        return SG_ERR_ARG;
    }
    y = state->y;
    tl = state->time_low;
    th = state->time_high;
    rh = state->raw_high;
    bx = state->base_x;
    pol = state->pol;
    for (i = 0; i < n_words; i++) {
        const uint32_t w = (uint32_t)data[2 * i] | ((uint32_t)data[2 * i + 1] << 8);
        const uint32_t pl = w & 0x0FFFu;
        const int ready = (y >= 0) & (tl >= 0) & (th >= 0);
        if (capacity - k < 12) {
            break;
        }
        switch (w >> 12) {
        case 0x0:
            y = (int64_t)(pl & 0x7FFu);
            break;
        case 0x2:
            if (ready) {
                sg_put_event(out + k * SG_EVENT_RECORD_SIZE, (uint16_t)(pl & 0x7FFu), (uint16_t)y,
                             (((uint64_t)th << 12) | (uint64_t)tl) + (uint64_t)t0,
                             (uint8_t)(pl >> 11));
                k++;
            }
            break;
        case 0x3:
            bx = (int64_t)(pl & 0x7FFu);
            pol = (int64_t)(pl >> 11);
            break;
        case 0x4:
        case 0x5: {
            const int v12 = (w >> 12) == 0x4;
            if (bx >= 0) {
                if (ready) {
                    uint32_t m = v12 ? pl : (pl & 0xFFu);
                    const uint64_t t = (((uint64_t)th << 12) | (uint64_t)tl) + (uint64_t)t0;
                    uint16_t x = (uint16_t)bx;
                    while (m) {
                        if (m & 1u) {
                            sg_put_event(out + k * SG_EVENT_RECORD_SIZE, x, (uint16_t)y, t,
                                         (uint8_t)pol);
                            k++;
                        }
                        m >>= 1;
                        x++;
                    }
                }
                bx += v12 ? 12 : 8;
            }
            break;
        }
        case 0x6:
            tl = (int64_t)pl;
            break;
        case 0x8:
            th = sg_unwrap_high(th, rh, (int64_t)pl, 12);
            rh = (int64_t)pl;
            tl = 0;
            break;
        default:
            break;
        }
    }
    state->y = y;
    state->time_low = tl;
    state->time_high = th;
    state->raw_high = rh;
    state->base_x = bx;
    state->pol = pol;
    *n_used = i;
    *n_events = k;
    return SG_OK;
}

sg_status sg_evt2_decode(sg_evt2_state *state, const uint8_t *data, size_t n_words, int64_t t0,
                         uint8_t *out, size_t capacity, size_t *n_used, size_t *n_events)
{
    size_t i;
    size_t k = 0;
    int64_t th, rh;
    if (state == NULL || n_used == NULL || n_events == NULL || (n_words && data == NULL) ||
        (capacity && out == NULL)) {
        return SG_ERR_ARG;
    }
    th = state->time_high;
    rh = state->raw_high;
    for (i = 0; i < n_words; i++) {
        const uint8_t *b = data + 4 * i;
        const uint32_t w = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
                           ((uint32_t)b[3] << 24);
        const uint32_t kind = w >> 28;
        if (k == capacity) {
            break;
        }
        if (kind <= 1u) {
            if (th >= 0) {
                sg_put_event(out + k * SG_EVENT_RECORD_SIZE, (uint16_t)((w >> 11) & 0x7FFu),
                             (uint16_t)(w & 0x7FFu),
                             (((uint64_t)th << 6) | ((w >> 22) & 0x3Fu)) + (uint64_t)t0,
                             (uint8_t)kind);
                k++;
            }
        } else if (kind == 8u) {
            const int64_t raw = (int64_t)(w & 0x0FFFFFFFu);
            th = sg_unwrap_high(th, rh, raw, 28);
            rh = raw;
        }
    }
    state->time_high = th;
    state->raw_high = rh;
    *n_used = i;
    *n_events = k;
    return SG_OK;
}

sg_status sg_aedat31_decode_polarity(const uint8_t *records, size_t n, int64_t ts_overflow,
                                     int include_invalid, uint8_t *out, size_t *n_events,
                                     size_t *bad_index)
{
    size_t i;
    size_t k = 0;
    const int64_t high = (int64_t)((uint64_t)ts_overflow << 31);
    if (n_events == NULL || bad_index == NULL || (n && (records == NULL || out == NULL))) {
        return SG_ERR_ARG;
    }
    *n_events = 0;
    for (i = 0; i < n; i++) {
        const uint8_t *r = records + 8 * i;
        const uint32_t d = (uint32_t)r[0] | ((uint32_t)r[1] << 8) | ((uint32_t)r[2] << 16) |
                           ((uint32_t)r[3] << 24);
        const uint32_t ts = (uint32_t)r[4] | ((uint32_t)r[5] << 8) | ((uint32_t)r[6] << 16) |
                            ((uint32_t)r[7] << 24);
        const uint32_t keep = include_invalid ? 1u : (d & 1u);
        if (keep & (ts >> 31)) {
            *bad_index = i;
            *n_events = k;
            return SG_ERR_VALUE;
        }
        /* branch-free compaction: always write, advance only when kept */
        sg_put_event(out + k * SG_EVENT_RECORD_SIZE, (uint16_t)(d >> 17),
                     (uint16_t)((d >> 2) & 0x7FFFu), (uint64_t)high | ts, (uint8_t)((d >> 1) & 1u));
        k += keep;
    }
    *n_events = k;
    return SG_OK;
}

/* ---------------------------------------------------------------- AEDAT 4 event packets */

static uint32_t sg_rd32(const uint8_t *b)
{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

/* The uint32 at `at` of buf[0..n) into *v, or 0 when it lies outside (offsets are 64-bit:
 * a 32-bit offset plus a 32-bit count can pass 4 GiB). */
static int sg_fb_u32(const uint8_t *buf, uint64_t n, uint64_t at, uint64_t *v)
{
    if (at + 4u > n) {
        return 0;
    }
    *v = sg_rd32(buf + (size_t)at);
    return 1;
}

sg_status sg_aedat4_decode_events(const uint8_t *packet, size_t size, uint8_t *out, size_t capacity,
                                  size_t *n_events, uint64_t *err_at)
{
    /* buf = packet + 4 (after the size prefix); error offsets are reported in packet */
    const uint8_t *buf = packet + 4;
    uint64_t n, length, root, vtable, vsize, elems = 0, rel, vec, count;
    size_t k;
    if (n_events == NULL || err_at == NULL || (size && packet == NULL) ||
        (capacity && out == NULL)) {
        return SG_ERR_ARG;
    }
    *n_events = 0;
    *err_at = 0;
    if (size < 4u) {
        *err_at = 4;
        return SG_ERR_BLOB;
    }
    length = sg_rd32(packet);
    if (length + 4u != (uint64_t)size) {
        *err_at = 4;
        return SG_ERR_BLOB;
    }
    n = length;
    if (!sg_fb_u32(buf, n, 0, &root)) {
        *err_at = 4;
        return SG_ERR_BLOB;
    }
    if (root + 4u > n) {
        *err_at = root + 4u;
        return SG_ERR_BLOB;
    }
    /* vtable = table - soffset (int32) */
    vtable = (uint64_t)((int64_t)root - (int64_t)(int32_t)sg_rd32(buf + (size_t)root));
    if ((int64_t)vtable < 0 || vtable + 4u > n) {
        *err_at = root + 4u;
        return SG_ERR_BLOB;
    }
    vsize = (uint64_t)buf[vtable] | ((uint64_t)buf[vtable + 1] << 8);
    if (vsize < 4u || (vsize & 1u) || vtable + vsize > n) {
        *err_at = vtable + 4u;
        return SG_ERR_BLOB;
    }
    if (vsize >= 6u) {
        rel = (uint64_t)buf[vtable + 4] | ((uint64_t)buf[vtable + 5] << 8);
        elems = rel ? root + rel : 0;
    }
    if (elems == 0u) {
        return SG_OK; /* no event vector: an empty packet */
    }
    if (!sg_fb_u32(buf, n, elems, &vec)) {
        *err_at = elems + 4u;
        return SG_ERR_BLOB;
    }
    vec += elems;
    if (!sg_fb_u32(buf, n, vec, &count)) {
        *err_at = vec + 4u;
        return SG_ERR_BLOB;
    }
    if (vec + 4u + count * SG_AEDAT4_EVENT_SIZE > n) {
        *err_at = vec + 4u;
        return SG_ERR_BLOB;
    }
    if (count > capacity) {
        *n_events = (size_t)count;
        return SG_ERR_ARENA;
    }
    {
        const uint8_t *e = buf + (size_t)vec + 4u;
        for (k = 0; k < (size_t)count; k++, e += SG_AEDAT4_EVENT_SIZE) {
            /* t int64 at 0, x int16 at 8, y int16 at 10, p uint8 at 12 */
            if (((e[7] | e[9] | e[11]) & 0x80u) || e[12] > 1u) {
                *err_at = k;
                return SG_ERR_VALUE;
            }
            {
                uint8_t *r = out + k * SG_EVENT_RECORD_SIZE;
                r[0] = e[8];
                r[1] = e[9];
                r[2] = e[10];
                r[3] = e[11];
                memcpy(r + 4, e, 8);
                r[12] = e[12];
            }
        }
    }
    *n_events = (size_t)count;
    return SG_OK;
}
