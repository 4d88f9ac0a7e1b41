/* SPDX-License-Identifier: MIT */
/**
 * @file sg_internal.h
 * @brief Private helpers every part of the runtime shares: the format constants
 *        (sg_format.h) checked against the public ones, little-endian readers and the
 *        integer helpers of docs/FORMAT.md §3. Not part of the public API.
 *
 * Private headers are included by relative path ("../../core/sg_internal.h"), so a build
 * needs only include/ on its include path (the firmware passes nothing else).
 */
#ifndef SG_INTERNAL_H
#define SG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sg_format.h"
#include "sg_runtime.h"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the runtime uses .sgm blobs in place and needs a little-endian target"
#endif
#endif

/* C99 has no _Static_assert: an array of negative size stops the build instead. */
#define SG_STATIC_ASSERT(name, cond) typedef char sg_static_assert_##name[(cond) ? 1 : -1]

/* sg_runtime.h states these as plain numbers for the cffi cdef; sg_format.h is generated
 * from pysg's layout tables. They must agree. */
SG_STATIC_ASSERT(version_sg, SG_FORMAT_VERSION == SG_FMT_VERSION_SG);
SG_STATIC_ASSERT(version_qnet, SG_FORMAT_VERSION_QNET == SG_FMT_VERSION_QNET);
SG_STATIC_ASSERT(max_stages, SG_MAX_STAGES == SG_FMT_MAX_STAGES);
SG_STATIC_ASSERT(max_buckets, SG_MAX_BUCKETS == SG_FMT_MAX_BUCKETS);
SG_STATIC_ASSERT(label_size, SG_LABEL_SIZE == SG_FMT_LABEL_SIZE);

/* Inline even at -Os (the firmware's level), where GCC would otherwise call these tiny
 * per-neuron helpers out of line. */
#if defined(__GNUC__)
#define SG_INLINE static inline __attribute__((always_inline))
#else
#define SG_INLINE static inline
#endif

/* A function kept out of line, where inlining would cost its caller's loops registers. */
#if defined(__GNUC__)
#define SG_NOINLINE __attribute__((noinline))
#else
#define SG_NOINLINE
#endif

/** Read a little-endian u16 at @p p (any alignment). */
static inline uint16_t sg_rd16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

/** Read a little-endian u32 at @p p (any alignment). */
static inline uint32_t sg_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/** Floor division of @p v by 2^@p n (arithmetic shift right), n in [0, 63]. */
SG_INLINE int64_t sg_asr64(int64_t v, unsigned n)
{
#if defined(__GNUC__)
    /* GCC and Clang document >> of a negative value as sign-extending (floor): one
     * shift instead of the two branches of the portable form. */
    return v >> n;
#else
    return v >= 0 ? (int64_t)((uint64_t)v >> n) : -(int64_t)(((uint64_t)(-(v + 1))) >> n) - 1;
#endif
}

/** int64 -> int32, clamped. */
SG_INLINE int32_t sg_sat32(int64_t v)
{
    return v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
}

#endif /* SG_INTERNAL_H */
