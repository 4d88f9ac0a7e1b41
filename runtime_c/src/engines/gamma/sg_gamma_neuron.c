/* SPDX-License-Identifier: MIT */
/*
 * SpikingGamma reference kernels (docs/FORMAT.md §3), the neuron side: the bucket decays
 * D(z, a, t) with the progress rule and the x of a run of neurons, K = 4 written out.
 * Cortex-M4/M7/M33 paths (SG_GAMMA_DSP, sg_gamma.h), bit-exact with the portable C beside
 * them, which stays the reference: the x of a neuron (QADD) and the K = 4 decay of a
 * neuron whose states are all small (one range test per neuron, then SMLABB / SMLATB per
 * tap). A range test per tap (SMMULR, or QSUB and a 32-bit MLA) costs what it saves
 * (tried: sg_decay_stage 8,083 -> 8,375 and 65,048 -> 68,346 M4 instructions per step).
 */
#include "sg_gamma.h"

#if defined(SG_GAMMA_DSP)
/* sg_decay when -2^14 <= z, t < 2^14 (nearly every state of a trained model): the Q15 sum
 * 2^15 t + a (z - t) + 2^14 over 2^15 is t + floor((a (z - t) + 2^14) / 2^15), and with
 * |z - t| < 2^15 both factors are int16: p = a (z - t) + 2^14 is one SMLAxB (a from a pair
 * of decays in one register), then an add with shift, instead of two 64-bit
 * multiply-accumulates, a 64-bit add and a 64-bit shift. */
SG_INLINE int32_t decay_p(int32_t z, int32_t t, int32_t p)
{
    const int32_t r = t + (p >> 15); /* >>: arithmetic on GCC and Clang */
    if (r == z && z != t) {          /* the progress rule: one unit towards t */
        return z < t ? z + 1 : z - 1;
    }
    return r;
}

/* All of a neuron's four states within [-2^14, 2^14): each |z - t| <= 2^15 - 1, an int16. */
SG_INLINE int small4(int32_t z0, int32_t z1, int32_t z2, int32_t z3)
{
    return (((uint32_t)z0 + 16384u) | ((uint32_t)z1 + 16384u) | ((uint32_t)z2 + 16384u) |
            ((uint32_t)z3 + 16384u)) < 32768u;
}
#endif

/* Decays of one neuron (taps K-1 down to 1, then bucket 0): tap b reads tap b-1 before
 * that is updated, so each state is loaded once and handed down. */
SG_INLINE void decay_neuron(int32_t *zj, size_t n, const uint16_t *alpha, uint32_t k)
{
    int32_t *p = zj + (size_t)(k - 1u) * n;
    int32_t cur = *p;
    uint32_t b;
    for (b = k - 1u; b >= 1u; --b) {
        int32_t *q = p - n;
        const int32_t prev = *q;
        if ((cur | prev) != 0) { /* D(0, a, 0) = 0: skip idle taps */
            *p = sg_decay(cur, alpha[b], prev);
        }
        cur = prev;
        p = q;
    }
    if (cur != 0) {
        *p = sg_decay(cur, alpha[0], 0);
    }
}

void sg_decay_stage(const sg_stage *st, uint16_t k, int32_t *z)
{
    const size_t n = st->n_out;
    const uint16_t *alpha = st->alpha;
    int32_t *zj;
    if (k == 4u) { /* the default K, written out: the four states stay in registers */
        const uint16_t a0 = alpha[0];
        const uint16_t a1 = alpha[1];
        const uint16_t a2 = alpha[2];
        const uint16_t a3 = alpha[3];
#if defined(SG_GAMMA_DSP)
        const uint32_t a01 = a0 | (uint32_t)a1 << 16; /* decay pairs for SMLABB / SMLATB */
        const uint32_t a23 = a2 | (uint32_t)a3 << 16;
#endif
        int32_t *zb = z + 2u * n; /* taps 2, 3: two pointers, one stride */
        for (zj = z; zj != z + n; ++zj, ++zb) {
            const int32_t z0 = zj[0];
            const int32_t z1 = zj[n];
            const int32_t z2 = zb[0];
            const int32_t z3 = zb[n];
            if ((z0 | z1 | z2 | z3) == 0) { /* idle neuron */
                continue;
            }
#if defined(SG_GAMMA_DSP)
            if (small4(z0, z1, z2, z3)) {
                zb[n] = decay_p(z3, z2, __smlatb((int32_t)a23, z3 - z2, 16384));
                zb[0] = decay_p(z2, z1, __smlabb((int32_t)a23, z2 - z1, 16384));
                zj[n] = decay_p(z1, z0, __smlatb((int32_t)a01, z1 - z0, 16384));
                zj[0] = decay_p(z0, 0, __smlabb((int32_t)a01, z0, 16384));
                continue;
            }
#endif
            if ((z3 | z2) != 0) {
                zb[n] = sg_decay(z3, a3, z2);
            }
            if ((z2 | z1) != 0) {
                zb[0] = sg_decay(z2, a2, z1);
            }
            if ((z1 | z0) != 0) {
                zj[n] = sg_decay(z1, a1, z0);
            }
            if (z0 != 0) {
                zj[0] = sg_decay(z0, a0, 0);
            }
        }
        return;
    }
    for (zj = z; zj != z + n; ++zj) {
        decay_neuron(zj, n, alpha, k);
    }
}

/* sum_k vq_k z^k of one neuron, int64 (|sum| < K 2^46). */
SG_INLINE int64_t bucket_sum(const int16_t *vq, const int32_t *zj, size_t n, uint32_t k)
{
    int64_t acc = 0;
    uint32_t b;
    if (k == 4u) { /* the default K, written out */
        return (int64_t)vq[0] * zj[0] + (int64_t)vq[1] * zj[n] + (int64_t)vq[2] * zj[2u * n] +
               (int64_t)vq[3] * zj[3u * n];
    }
    for (b = 0; b < k; ++b, zj += n) {
        acc += (int64_t)vq[b] * *zj; /* one multiply-accumulate (SMLAL on Arm) */
    }
    return acc;
}

/* sat32(bias + round_half_up(acc / 2^n)); round half up as
 * floor((acc + 2^(n-1)) / 2^n) = floor((floor(acc / 2^(n-1)) + 1) / 2), which needs no
 * 64-bit constant. */
SG_INLINE int32_t x_of_c(int64_t acc, unsigned n, int32_t bias)
{
    const int64_t r = n > 0u ? sg_asr64(sg_asr64(acc, n - 1u) + 1, 1u) : acc;
    return sg_sat32((int64_t)bias + r);
}

#if defined(SG_GAMMA_DSP)
/* x_of_c when acc fits 32 bits (most neurons): the same rounding by 32-bit shifts
 * (floor((h + 1) / 2) = (h >> 1) + (h & 1), no overflow), sat32(bias + r) one QADD. */
SG_INLINE int32_t x_of(int64_t acc, unsigned n, int32_t bias)
{
    const int32_t lo = (int32_t)acc;
    if ((int32_t)sg_asr64(acc, 32u) == (lo >> 31)) {
        int32_t r = lo;
        if (n > 0u) {
            const int32_t h = lo >> (n - 1u < 31u ? n - 1u : 31u);
            r = (h >> 1) + (h & 1);
        }
        return __qadd(bias, r);
    }
    return x_of_c(acc, n, bias);
}
#else
#define x_of x_of_c
#endif

void sg_stage_x(const sg_stage *st, uint16_t k, const int32_t *z, uint32_t j0, uint32_t count,
                int32_t *x)
{
    const size_t n_out = st->n_out;
    const uint32_t spatial = (uint32_t)st->out_h * st->out_w;
    const int32_t *zj = z + j0;
    const int32_t *end = zj + count;
    if (spatial == 1u) { /* dense: one channel per neuron, its constants side by side */
        const int16_t *vq = st->vweights + (size_t)j0 * k;
        const uint8_t *sh = st->vshift + j0;
        const int32_t *bias = st->bias + j0;
        if (k == 4u) {
            for (; zj != end; ++zj, ++x, vq += 4) {
                *x = x_of(bucket_sum(vq, zj, n_out, 4u), *sh++, *bias++);
            }
        } else {
            for (; zj != end; ++zj, ++x, vq += k) {
                *x = x_of(bucket_sum(vq, zj, n_out, k), *sh++, *bias++);
            }
        }
    } else { /* conv: channel by channel, its constants hoisted; no division per neuron */
        uint32_t ch = j0 / spatial;
        uint32_t left = spatial - (j0 - ch * spatial); /* neurons of channel ch still to do */
        const int16_t *vq = st->vweights + (size_t)ch * k;
        for (; zj != end; ++ch, vq += k, left = spatial) {
            const int32_t *stop = (uint32_t)(end - zj) < left ? end : zj + left;
            const unsigned n = st->vshift[ch];
            const int32_t bias = st->bias[ch];
            if (k == 4u) { /* the default K: the four bucket weights in registers */
                const int32_t v0 = vq[0];
                const int32_t v1 = vq[1];
                const int32_t v2 = vq[2];
                const int32_t v3 = vq[3];
                const int32_t *zb = zj + 2u * n_out; /* taps 2, 3: two pointers, one stride */
                for (; zj != stop; ++zj, ++zb, ++x) {
                    *x = x_of((int64_t)v0 * zj[0] + (int64_t)v1 * zj[n_out] + (int64_t)v2 * zb[0] +
                                  (int64_t)v3 * zb[n_out],
                              n, bias);
                }
            } else {
                for (; zj != stop; ++zj, ++x) {
                    *x = x_of(bucket_sum(vq, zj, n_out, k), n, bias);
                }
            }
        }
    }
}
