/* SPDX-License-Identifier: MIT */
/**
 * @file sg_gamma.h
 * @brief Private: the SpikingGamma kind (version 1 .sgm, docs/FORMAT.md §1-5): its
 *        reference kernels (sg_gamma_kernels.c), loader (sg_gamma_load.c), step phases
 *        (sg_gamma_step.c), input mapping (sg_gamma_input.c) and engine (sg_gamma_engine.c).
 */
#ifndef SG_GAMMA_H
#define SG_GAMMA_H

#include "../../core/sg_engine.h"

/* ---------------------------------------------------------------- kernels */

/* Cortex-M4/M7/M33 DSP extension paths, bit-exact with the portable C, which stays the
 * reference; -DSG_NO_DSP builds the portable C on a DSP core too (the runtime tests
 * compare the two). */
#if defined(__ARM_FEATURE_DSP) && !defined(SG_NO_DSP)
#define SG_GAMMA_DSP 1
#include <arm_acle.h>
#endif

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

/* Internal stage flag, set by the loader (never in a file: the loader refuses unknown
 * flag bits first): a conv with stride = kernel and padding 0, a "patch" conv, whose every
 * input reaches exactly one output position. -DSG_NO_PATCH leaves it unset and
 * sg_scatter ignoring it, so the generic conv kernel runs (the runtime tests compare the
 * two). */
#define SG_FLAG_PATCH 0x8000u

/* Patch conv: n inputs of one output position, held[2i] their tap ((c kernel + ki) kernel
 * + kj) and held[2i + 1] their count, into its out_c bucket-0 states, zt = z0 + rr out_w
 * + qq (wrap32 adds), two at a time: each state loaded and stored once per pair. Returns
 * the events (the sum of the counts; the caller keeps it within uint32). */
uint32_t sg_patch_scatter(const sg_stage *st, const uint32_t *held, uint32_t n, int32_t *zt);

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

/* ---------------------------------------------------------------- delivery */

/* 32-bit words of one delay-ring slot (FORMAT.md §3 "Delays"): an int32 count per
 * synaptic input, or with SG_FLAG_SPIKE_RING one bit per input. */
static inline uint32_t sg_gamma_ring_words(const sg_stage *st)
{
    return (st->flags & SG_FLAG_SPIKE_RING) != 0u ? (st->n_in + 31u) / 32u : st->n_in;
}

/* 32-bit words of stage 0's counts of the open step (min_count >= 2): a byte per raw input. */
static inline uint64_t sg_gamma_count_words(const sg_stage *st)
{
    return ((uint64_t)st->in_c * st->in_h * st->in_w + 3u) / 4u;
}

/* The smallest count of a step stage 0 keeps (1: every count). */
static inline uint32_t sg_gate_of(const sg_stage *st)
{
    return st->min_count >= 2u ? st->min_count : 1u;
}

/* A frame's count v as stage 0 takes it: 0 below the gate g. */
#define SG_GATED(v, g) ((v) >= (g) ? (v) : 0u)

/* An event (or @p count of them) at synaptic input i of stage l in the current step:
 * into the delay ring, or scattered into bucket 0 at once. Out of line: inlined into the
 * feed loop, its rarely taken delay-ring path costs that loop registers. */
void sg_gamma_deliver(sg_runtime *rt, uint32_t l, uint32_t i, uint32_t count);

/* A raw input (of stage l's in_c x in_h x in_w) through pooling; 0 if dropped. */
static inline int sg_gamma_route(sg_runtime *rt, uint32_t l, uint32_t raw, uint32_t count)
{
    const sg_stage *st = &rt->model->net.gamma.stages[l];
    int32_t i = st->pool == 1u ? (int32_t)raw : sg_pool_index(st, raw);
    if (i < 0) {
        return 0;
    }
    sg_gamma_deliver(rt, l, (uint32_t)i, count);
    return 1;
}

/* ---------------------------------------------------------------- the engine's operations */

sg_status sg_gamma_check_header(sg_loader *L);
sg_status sg_gamma_load(sg_loader *L, uint64_t *arena_bytes, uint64_t *n_out);
/**
 * Stage 0's gate: what @p n more events at raw input @p r of the open step add to the
 * count the stage takes (0 while the input's count stays below @p g), counted in the
 * input's byte of the open step (FORMAT.md §3, "Input gate").
 */
uint32_t sg_gamma_gate_add(sg_runtime *rt, uint32_t r, uint32_t n, uint32_t g);

size_t sg_gamma_layout(sg_runtime *rt);
void sg_gamma_reset(sg_runtime *rt);
void sg_gamma_open_step(sg_runtime *rt);
void sg_gamma_close_step(sg_runtime *rt);
size_t sg_gamma_feed(sg_runtime *rt, const sg_event *events, size_t e, size_t n, int64_t t_lo,
                     size_t *accepted, size_t *dropped);
void sg_gamma_add_counts(sg_runtime *rt, const uint16_t *counts);

#endif /* SG_GAMMA_H */
