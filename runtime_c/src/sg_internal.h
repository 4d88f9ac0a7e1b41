/* SPDX-License-Identifier: MIT */
/**
 * @file sg_internal.h
 * @brief Private helpers of the pysg C runtime: little-endian readers, CRC-32 and the
 *        portable reference kernels (docs/FORMAT.md §3). Not part of the public API.
 */
#ifndef SG_INTERNAL_H
#define SG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sg_runtime.h"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the runtime uses .sgm blobs in place and needs a little-endian target"
#endif
#endif

/* Inline even at -Os (the firmware's level), where GCC would otherwise call these tiny
 * per-neuron helpers out of line. */
#if defined(__GNUC__)
#define SG_INLINE static inline __attribute__((always_inline))
#else
#define SG_INLINE static inline
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

/**
 * Bucket update D(z, a, t) of FORMAT.md §3 with the progress rule.
 * @param z  state, int32
 * @param a  Q15 decay, 0..32767
 * @param t  target, int32
 * @return the new state, between z and t
 */
SG_INLINE int32_t sg_decay(int32_t z, uint16_t a, int32_t t)
{
    int64_t acc = (int64_t)a * z + (int64_t)(32768 - (int32_t)a) * t + 16384;
    int32_t r = (int32_t)sg_asr64(acc, 15);
    if (r == z && z != t) {
        r = z + (t > z ? 1 : -1);
    }
    return r;
}

/**
 * Phase 1 of a step for one stage: taps K-1..1 then bucket 0 (FORMAT.md §3 step 1).
 * Neurons whose buckets are all zero stay zero (D(0, a, 0) = 0) and are skipped.
 * @param[in]     st  the stage (alpha, n_out)
 * @param[in]     k   number of buckets
 * @param[in,out] z   [k][n_out] bucket states
 */
void sg_decay_stage(const sg_stage *st, uint16_t k, int32_t *z);

/**
 * Scatter @p count events at synaptic input @p i into bucket 0 (wrap32 adds).
 * @param[in]     st     the stage (dense or conv weights and geometry)
 * @param[in]     i      synaptic input index, < st->n_in, channel-major (c, r, q)
 * @param[in]     count  event count (int32, wraps)
 * @param[in,out] z0     [n_out] bucket 0 states
 * @return the number of bucket-0 states changed (= sg_fanout(st, i))
 */
uint32_t sg_scatter(const sg_stage *st, uint32_t i, int32_t count, int32_t *z0);
/* The dense case of sg_scatter on its own: the hot path of dense stages, kept out of
 * sg_scatter so it does not pay the conv kernel's register saves on every event. */
uint32_t sg_scatter_dense(const sg_stage *st, uint32_t i, uint32_t count, int32_t *z0);
/* Two inputs of a dense stage at once (counts c1 at i1, c2 at i2): the same adds as two
 * sg_scatter_dense calls, with each bucket-0 state loaded and stored once. Returns out_c. */
uint32_t sg_scatter_dense2(const sg_stage *st, uint32_t i1, uint32_t c1, uint32_t i2, uint32_t c2,
                           int32_t *z0);

/**
 * Fan-out of synaptic input @p i: how many bucket-0 states one event there changes
 * (dense: out_c; conv: out_c x valid kernel taps). Used for stats.synops.
 */
uint32_t sg_fanout(const sg_stage *st, uint32_t i);

/**
 * Map raw input @p raw of the stage's (in_c, in_h, in_w) through floor sum pooling.
 * @return the synaptic input index, or -1 if the pooled grid drops it
 */
int32_t sg_pool_index(const sg_stage *st, uint32_t raw);

/**
 * x of neurons j0 .. j0 + count - 1 of a stage: sat32(bias + round_half_up(sum_k vq_k z^k /
 * 2^n)) (FORMAT.md §3 step 3b), walking the channels without a division per neuron.
 * @param[in]  st     the stage
 * @param[in]  k      number of buckets
 * @param[in]  z      [k][n_out] bucket states
 * @param[in]  j0     first neuron, j0 + count <= n_out
 * @param[in]  count  neurons
 * @param[out] x      [count] their x
 */
void sg_stage_x(const sg_stage *st, uint16_t k, const int32_t *z, uint32_t j0, uint32_t count,
                int32_t *x);

/* ---------------------------------------------------------------- version 2 (sg_qnet.c) */

/** Point rt->qx .. rt->qscratch into rt->arena (FORMAT.md §9); returns the bytes used. */
size_t sg_qnet_layout(sg_runtime *rt);

/** State of the all-base input (FORMAT.md §8 "Reset") over a zeroed arena. */
void sg_qnet_reset(sg_runtime *rt);

/** Open step rt->step: clear its count-ring slot (event-count input). */
void sg_qnet_open_step(sg_runtime *rt);

/** Add a frame of P x in_h x in_w counts to the open step's slot (saturating at 65535). */
void sg_qnet_add_counts(sg_runtime *rt, const uint16_t *counts);

/** Close the open step: encoder deltas through every layer, logits, scores, step + 1. */
void sg_qnet_close_step(sg_runtime *rt);

/** One step of a tensor-input model from the int8 input tensor @p x. */
void sg_qnet_step_tensor(sg_runtime *rt, const int8_t *x);

#endif /* SG_INTERNAL_H */
