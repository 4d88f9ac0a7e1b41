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

/* ---------------------------------------------------------------- LZ4 frames */

static uint32_t sg_rd32(const uint8_t *b)
{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

static uint32_t sg_rotl32(uint32_t v, int r)
{
    return (v << r) | (v >> (32 - r));
}

#define SG_XXH_P1 2654435761u
#define SG_XXH_P2 2246822519u
#define SG_XXH_P3 3266489917u
#define SG_XXH_P4 668265263u
#define SG_XXH_P5 374761393u

/* A fuzzer build computes the LZ4 checksums but ignores mismatches, so that mutated
 * frames reach the block decoder (as the loader skips its CRCs). */
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
#define SG_SUM_BAD(got, stored) ((void)((got) != (stored)), 0)
#else
#define SG_SUM_BAD(got, stored) ((got) != (stored))
#endif

/* xxHash32 with seed 0 (the LZ4 frame checksums). */
static uint32_t sg_xxh32(const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n;
    uint32_t h;
    if (n >= 16) {
        const uint8_t *limit = end - 16;
        uint32_t v1 = SG_XXH_P1 + SG_XXH_P2, v2 = SG_XXH_P2, v3 = 0, v4 = 0u - SG_XXH_P1;
        do {
            v1 = sg_rotl32(v1 + sg_rd32(p) * SG_XXH_P2, 13) * SG_XXH_P1;
            v2 = sg_rotl32(v2 + sg_rd32(p + 4) * SG_XXH_P2, 13) * SG_XXH_P1;
            v3 = sg_rotl32(v3 + sg_rd32(p + 8) * SG_XXH_P2, 13) * SG_XXH_P1;
            v4 = sg_rotl32(v4 + sg_rd32(p + 12) * SG_XXH_P2, 13) * SG_XXH_P1;
            p += 16;
        } while (p <= limit);
        h = sg_rotl32(v1, 1) + sg_rotl32(v2, 7) + sg_rotl32(v3, 12) + sg_rotl32(v4, 18);
    } else {
        h = SG_XXH_P5;
    }
    h += (uint32_t)n;
    while (end - p >= 4) {
        h = sg_rotl32(h + sg_rd32(p) * SG_XXH_P3, 17) * SG_XXH_P4;
        p += 4;
    }
    while (p < end) {
        h = sg_rotl32(h + (uint32_t)*p * SG_XXH_P5, 11) * SG_XXH_P1;
        p++;
    }
    h ^= h >> 15;
    h *= SG_XXH_P2;
    h ^= h >> 13;
    h *= SG_XXH_P3;
    h ^= h >> 16;
    return h;
}

/*
 * One compressed block src[0..n) appended at dst[*pos]. Matches may reach back to
 * dst[low] (the block start for independent blocks, 0 for linked ones: the whole content
 * is contiguous). Output may not pass dst[cap] (block start + maximum block size), and
 * liblz4's parsing restrictions apply against it, so both decoders agree on what is valid.
 */
static sg_status sg_lz4_block(const uint8_t *src, size_t n, uint8_t *dst, size_t *pos, size_t low,
                              size_t cap)
{
    size_t i = 0;
    size_t o = *pos;
    for (;;) {
        size_t lit, ml, off;
        unsigned token;
        if (i >= n) {
            return SG_ERR_TRUNCATED;
        }
        token = src[i++];
        lit = token >> 4;
        if (lit == 15u) {
            unsigned b;
            do {
                if (i >= n) {
                    return SG_ERR_TRUNCATED;
                }
                b = src[i++];
                lit += b;
            } while (b == 255u);
        }
        if (lit > n - i) {
            return SG_ERR_TRUNCATED;
        }
        if (lit > cap - o) {
            return SG_ERR_BLOB;
        }
        if (cap - o - lit < 12u || n - i - lit < 8u) {
            /* too close to an end for a match (MFLIMIT / input margin): the last sequence */
            if (lit != n - i) {
                return SG_ERR_BLOB;
            }
            memcpy(dst + o, src + i, lit);
            *pos = o + lit;
            return SG_OK;
        }
        /* 8-byte steps may run up to 7 bytes past the literals: both margins above are >= 8 */
        {
            const uint8_t *sp = src + i;
            uint8_t *dp = dst + o;
            uint8_t *const de = dp + lit;
            while (dp < de) {
                memcpy(dp, sp, 8);
                dp += 8;
                sp += 8;
            }
        }
        o += lit;
        i += lit;
        off = (size_t)src[i] | ((size_t)src[i + 1] << 8);
        i += 2;
        if (off == 0u || off > o - low) {
            return SG_ERR_BLOB;
        }
        ml = (size_t)(token & 15u) + 4u;
        if ((token & 15u) == 15u) {
            unsigned b;
            do {
                if (i >= n) {
                    return SG_ERR_TRUNCATED;
                }
                b = src[i++];
                ml += b;
                if (n - i < 4u) { /* liblz4's read limit for match lengths */
                    return SG_ERR_BLOB;
                }
            } while (b == 255u);
        }
        if (ml > cap - o || cap - o - ml < 5u) { /* the last 5 bytes must be literals */
            return SG_ERR_BLOB;
        }
        if (off >= 8u && cap - o - ml >= 8u) {
            /* 8-byte steps read only bytes already final (off >= 8), even when overlapping */
            const uint8_t *m = dst + o - off;
            uint8_t *d = dst + o;
            uint8_t *const de = d + ml;
            while (d < de) {
                memcpy(d, m, 8);
                d += 8;
                m += 8;
            }
            o += ml;
        } else { /* a short repeating pattern, or near the block end: byte by byte */
            const uint8_t *m = dst + o - off;
            uint8_t *d = dst + o;
            size_t j;
            for (j = 0; j < ml; j++) {
                d[j] = m[j];
            }
            o += ml;
        }
    }
}

sg_status sg_lz4_frame_decompress(const uint8_t *src, size_t src_size, uint8_t *dst,
                                  size_t dst_capacity, size_t *dst_size)
{
    size_t i, o = 0, block_max, hdr;
    unsigned flg, bd;
    int linked, block_sum, content_sum, has_size;
    uint64_t content_size = 0;
    if (dst_size == NULL || (src_size && src == NULL) || (dst_capacity && dst == NULL)) {
        return SG_ERR_ARG;
    }
    *dst_size = 0;
    if (src_size < 4u) {
        return SG_ERR_TRUNCATED;
    }
    if ((sg_rd32(src) & 0xFFFFFFF0u) == 0x184D2A50u) {
        return SG_ERR_UNSUPPORTED; /* skippable frame */
    }
    if (sg_rd32(src) != 0x184D2204u) {
        return SG_ERR_HEADER;
    }
    if (src_size < 7u) {
        return SG_ERR_TRUNCATED;
    }
    flg = src[4];
    bd = src[5];
    if ((flg >> 6) != 1u || (flg & 0x02u) || (bd & 0x8Fu) || ((bd >> 4) & 7u) < 4u) {
        return SG_ERR_HEADER;
    }
    if (flg & 0x01u) {
        return SG_ERR_UNSUPPORTED; /* dictionary ID */
    }
    linked = !(flg & 0x20u);
    block_sum = (flg & 0x10u) != 0;
    has_size = (flg & 0x08u) != 0;
    content_sum = (flg & 0x04u) != 0;
    block_max = (size_t)1 << (8u + 2u * ((bd >> 4) & 7u)); /* 64 KiB, 256 KiB, 1 MiB, 4 MiB */
    hdr = has_size ? 10u : 2u; /* FLG, BD, content size: what the header checksum covers */
    if (src_size < 4u + hdr + 1u) {
        return SG_ERR_TRUNCATED;
    }
    if (has_size) {
        unsigned k;
        for (k = 0; k < 8u; k++) {
            content_size |= (uint64_t)src[6 + k] << (8u * k);
        }
    }
    if (SG_SUM_BAD((sg_xxh32(src + 4, hdr) >> 8) & 0xFFu, src[4 + hdr])) {
        return SG_ERR_HEADER;
    }
    i = 4u + hdr + 1u;
    for (;;) {
        uint32_t word;
        size_t bsize;
        if (src_size - i < 4u) {
            return SG_ERR_TRUNCATED;
        }
        word = sg_rd32(src + i);
        i += 4u;
        if (word == 0u) {
            break; /* EndMark */
        }
        bsize = (size_t)(word & 0x7FFFFFFFu);
        if (bsize > block_max) {
            return SG_ERR_HEADER;
        }
        if (src_size - i < bsize + (block_sum ? 4u : 0u)) {
            return SG_ERR_TRUNCATED;
        }
        if (block_sum && SG_SUM_BAD(sg_xxh32(src + i, bsize), sg_rd32(src + i + bsize))) {
            return SG_ERR_CRC;
        }
        if (word & 0x80000000u) { /* stored block */
            if (bsize > dst_capacity - o) {
                return SG_ERR_ARENA;
            }
            memcpy(dst + o, src + i, bsize);
            o += bsize;
        } else {
            sg_status st;
            if (block_max > dst_capacity - o) {
                return SG_ERR_ARENA;
            }
            st = sg_lz4_block(src + i, bsize, dst, &o, linked ? 0u : o, o + block_max);
            if (st != SG_OK) {
                return st;
            }
        }
        i += bsize + (block_sum ? 4u : 0u);
    }
    if (content_size != 0u && content_size != (uint64_t)o) { /* 0: unknown, as liblz4 reads it */
        return SG_ERR_BLOB;
    }
    if (content_sum) {
        if (src_size - i < 4u) {
            return SG_ERR_TRUNCATED;
        }
        if (SG_SUM_BAD(sg_xxh32(dst, o), sg_rd32(src + i))) {
            return SG_ERR_CRC;
        }
    }
    *dst_size = o;
    return SG_OK;
}

/* ---------------------------------------------------------------- AEDAT 4 event packets */

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
