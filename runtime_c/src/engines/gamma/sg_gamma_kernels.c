/* SPDX-License-Identifier: MIT */
/*
 * SpikingGamma reference kernels (docs/FORMAT.md §3): bucket decay, pooling index map,
 * dense and conv scatter, the x of a neuron. Always built; an optimised variant for an
 * ISA would replace a whole function under #if.
 */
#include "sg_gamma.h"

/* Cortex-M4/M7/M33 paths, bit-exact with the portable C beside them, which stays the
 * reference; -DSG_NO_DSP builds the portable C on a DSP core too (the runtime tests
 * compare the two): the x of a neuron (QADD), the K = 4 decay of a neuron whose states
 * are all small (one range test per neuron, then SMLABB / SMLATB per tap) and pairs of a
 * patch conv's inputs (SMLABB). A range test
 * per tap (SMMULR, or QSUB and a 32-bit MLA) costs what it saves (tried: sg_decay_stage
 * 8,083 -> 8,375 and 65,048 -> 68,346 M4 instructions per step), and a scatter's MLA per
 * weight already is one instruction (SMLAD would pair two strided int8 weights at the
 * cost of a PKHBT). */
#if defined(__ARM_FEATURE_DSP) && !defined(SG_NO_DSP)
#define SG_GAMMA_DSP 1
#include <arm_acle.h>
#endif

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
        for (zj = z; zj != z + n; ++zj) {
            const int32_t z0 = zj[0];
            const int32_t z1 = zj[n];
            const int32_t z2 = zj[2u * n];
            const int32_t z3 = zj[3u * n];
            if ((z0 | z1 | z2 | z3) == 0) { /* idle neuron */
                continue;
            }
#if defined(SG_GAMMA_DSP)
            if (small4(z0, z1, z2, z3)) {
                zj[3u * n] = decay_p(z3, z2, __smlatb((int32_t)a23, z3 - z2, 16384));
                zj[2u * n] = decay_p(z2, z1, __smlabb((int32_t)a23, z2 - z1, 16384));
                zj[n] = decay_p(z1, z0, __smlatb((int32_t)a01, z1 - z0, 16384));
                zj[0] = decay_p(z0, 0, __smlabb((int32_t)a01, z0, 16384));
                continue;
            }
#endif
            if ((z3 | z2) != 0) {
                zj[3u * n] = sg_decay(z3, a3, z2);
            }
            if ((z2 | z1) != 0) {
                zj[2u * n] = sg_decay(z2, a2, z1);
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

int32_t sg_pool_index(const sg_stage *st, uint32_t raw)
{
    const uint32_t hw = (uint32_t)st->in_h * st->in_w;
    const uint32_t c = raw / hw;
    const uint32_t rem = raw - c * hw;
    const uint32_t r = rem / st->in_w / st->pool;
    const uint32_t q = rem % st->in_w / st->pool;
    if (r >= st->syn_h || q >= st->syn_w) {
        return -1;
    }
    return (int32_t)((c * st->syn_h + r) * st->syn_w + q);
}

uint32_t sg_scatter_dense(const sg_stage *st, uint32_t i, uint32_t count, int32_t *z0)
{
    const size_t n_in = st->n_in;
    const int8_t *w = st->weights + i;
    const uint32_t n = st->out_c;
    uint32_t j = 0;
    /* Eight adds per turn (the weight column is strided, so the compiler cannot
     * vectorise it); count x weight is one multiply-accumulate (MLA on Arm), as cheap
     * as an add. Adds wrap (uint32) as FORMAT.md specifies. */
    for (; j + 8u <= n; j += 8u, z0 += 8, w += 8u * n_in) {
        const int8_t *w4 = w + 4u * n_in;
        z0[0] = (int32_t)((uint32_t)z0[0] + count * (uint32_t)(int32_t)w[0]);
        z0[1] = (int32_t)((uint32_t)z0[1] + count * (uint32_t)(int32_t)w[n_in]);
        z0[2] = (int32_t)((uint32_t)z0[2] + count * (uint32_t)(int32_t)w[2u * n_in]);
        z0[3] = (int32_t)((uint32_t)z0[3] + count * (uint32_t)(int32_t)w[3u * n_in]);
        z0[4] = (int32_t)((uint32_t)z0[4] + count * (uint32_t)(int32_t)w4[0]);
        z0[5] = (int32_t)((uint32_t)z0[5] + count * (uint32_t)(int32_t)w4[n_in]);
        z0[6] = (int32_t)((uint32_t)z0[6] + count * (uint32_t)(int32_t)w4[2u * n_in]);
        z0[7] = (int32_t)((uint32_t)z0[7] + count * (uint32_t)(int32_t)w4[3u * n_in]);
    }
    for (; j < n; ++j, ++z0, w += n_in) {
        *z0 = (int32_t)((uint32_t)*z0 + count * (uint32_t)(int32_t)w[0]);
    }
    return n;
}

uint32_t sg_scatter_dense2(const sg_stage *st, uint32_t i1, uint32_t c1, uint32_t i2, uint32_t c2,
                           int32_t *z0)
{
    const size_t s = st->n_in;
    const int8_t *w1 = st->weights + i1;
    const int8_t *w2 = st->weights + i2;
    const uint32_t n = st->out_c;
    uint32_t j = 0;
    /* Two inputs per pass: each state is loaded and stored once for both (two MLAs). */
    for (; j + 4u <= n; j += 4u, z0 += 4, w1 += 4u * s, w2 += 4u * s) {
        z0[0] = (int32_t)((uint32_t)z0[0] + c1 * (uint32_t)(int32_t)w1[0] +
                          c2 * (uint32_t)(int32_t)w2[0]);
        z0[1] = (int32_t)((uint32_t)z0[1] + c1 * (uint32_t)(int32_t)w1[s] +
                          c2 * (uint32_t)(int32_t)w2[s]);
        z0[2] = (int32_t)((uint32_t)z0[2] + c1 * (uint32_t)(int32_t)w1[2u * s] +
                          c2 * (uint32_t)(int32_t)w2[2u * s]);
        z0[3] = (int32_t)((uint32_t)z0[3] + c1 * (uint32_t)(int32_t)w1[3u * s] +
                          c2 * (uint32_t)(int32_t)w2[3u * s]);
    }
    for (; j < n; ++j, ++z0, w1 += s, w2 += s) {
        *z0 = (int32_t)((uint32_t)*z0 + c1 * (uint32_t)(int32_t)*w1 + c2 * (uint32_t)(int32_t)*w2);
    }
    return n;
}

/* Targets of input row r along one axis: taps ki with (r + padding - ki) a multiple of
 * stride and 0 <= (r + padding - ki) / stride < out. */
static uint32_t scatter_conv(const sg_stage *st, uint32_t i, uint32_t count, int32_t *z0)
{
    const uint32_t kk = st->kernel;
    const uint32_t s = st->stride;
    const uint32_t hw = (uint32_t)st->syn_h * st->syn_w;
    const uint32_t c = i / hw;
    const uint32_t r = (i - c * hw) / st->syn_w;
    const uint32_t q = (i - c * hw) % st->syn_w;
    const uint32_t out_hw = (uint32_t)st->out_h * st->out_w;
    const size_t o_stride = (size_t)st->syn_c * kk * kk;
    const int8_t *wc = st->weights + (size_t)c * kk * kk;
    uint32_t ops = 0;
    uint32_t ki;
    uint32_t kj;
    uint32_t o;
    for (ki = 0; ki < kk; ++ki) {
        const int32_t dr = (int32_t)r + (int32_t)st->padding - (int32_t)ki;
        uint32_t rr;
        if (dr < 0 || (uint32_t)dr % s != 0u) {
            continue;
        }
        rr = (uint32_t)dr / s;
        if (rr >= st->out_h) {
            continue;
        }
        for (kj = 0; kj < kk; ++kj) {
            const int32_t dq = (int32_t)q + (int32_t)st->padding - (int32_t)kj;
            uint32_t qq;
            const int8_t *w;
            int32_t *zt;
            if (dq < 0 || (uint32_t)dq % s != 0u) {
                continue;
            }
            qq = (uint32_t)dq / s;
            if (qq >= st->out_w) {
                continue;
            }
            w = wc + ki * kk + kj;
            zt = z0 + rr * st->out_w + qq;
            for (o = 0; o < st->out_c; ++o) {
                zt[(size_t)o * out_hw] =
                    (int32_t)((uint32_t)zt[(size_t)o * out_hw] +
                              count * (uint32_t)(int32_t)w[(size_t)o * o_stride]);
            }
            ops += st->out_c;
        }
    }
    return ops;
}

/* A patch conv (SG_FLAG_PATCH: stride = kernel, padding 0) sends each input to one output
 * position: the out_c states there, out_h out_w apart, get count x their weight at tap t
 * of the input's channel (weights of channel o are o_stride = syn_c k k apart). */
static void patch_add(const sg_stage *st, uint32_t t, uint32_t count, int32_t *zt)
{
    const size_t ws = (size_t)st->syn_c * st->kernel * st->kernel;
    const size_t zs = (size_t)st->out_h * st->out_w;
    const int8_t *w = st->weights + t;
    uint32_t o = st->out_c;
    for (; o >= 4u; o -= 4u, w += 4u * ws, zt += 4u * zs) {
        zt[0] = (int32_t)((uint32_t)zt[0] + count * (uint32_t)(int32_t)w[0]);
        zt[zs] = (int32_t)((uint32_t)zt[zs] + count * (uint32_t)(int32_t)w[ws]);
        zt[2u * zs] = (int32_t)((uint32_t)zt[2u * zs] + count * (uint32_t)(int32_t)w[2u * ws]);
        zt[3u * zs] = (int32_t)((uint32_t)zt[3u * zs] + count * (uint32_t)(int32_t)w[3u * ws]);
    }
    for (; o != 0u; --o, w += ws, zt += zs) {
        *zt = (int32_t)((uint32_t)*zt + count * (uint32_t)(int32_t)*w);
    }
}

/* Two taps of one output position: each state loaded and stored once for both. */
SG_INLINE void patch_add2(const int8_t *w, size_t ws, int32_t *zt, size_t zs, uint32_t o,
                          uint32_t t1, uint32_t c1, uint32_t t2, uint32_t c2)
{
#if defined(SG_GAMMA_DSP)
    if ((c1 | c2) < 32768u) { /* int16 counts: SMLABB chains the two adds, one instruction
                               * each, wrapping as the C does (only the Q flag notes it) */
        for (; o >= 2u; o -= 2u, w += 2u * ws, zt += 2u * zs) {
            zt[0] = __smlabb((int32_t)c2, w[t2], __smlabb((int32_t)c1, w[t1], zt[0]));
            zt[zs] = __smlabb((int32_t)c2, w[ws + t2], __smlabb((int32_t)c1, w[ws + t1], zt[zs]));
        }
        if (o != 0u) {
            *zt = __smlabb((int32_t)c2, w[t2], __smlabb((int32_t)c1, w[t1], *zt));
        }
        return;
    }
#endif
    for (; o != 0u; --o, w += ws, zt += zs) { /* two MLAs */
        *zt = (int32_t)((uint32_t)*zt + c1 * (uint32_t)(int32_t)w[t1] +
                        c2 * (uint32_t)(int32_t)w[t2]);
    }
}

uint32_t sg_patch_scatter(const sg_stage *st, const uint32_t *held, uint32_t n, int32_t *zt)
{
    const size_t ws = (size_t)st->syn_c * st->kernel * st->kernel;
    const size_t zs = (size_t)st->out_h * st->out_w;
    const uint32_t *end = held + 2u * n;
    uint32_t sum = 0;
    for (; end - held >= 4; held += 4) {
        patch_add2(st->weights, ws, zt, zs, st->out_c, held[0], held[1], held[2], held[3]);
        sum += held[1] + held[3];
    }
    if (held != end) {
        patch_add(st, held[0], held[1], zt);
        sum += held[1];
    }
    return sum;
}

#if !defined(SG_NO_PATCH)
/* sg_scatter of a patch conv: no tap search, the one output position by division. */
static uint32_t scatter_patch(const sg_stage *st, uint32_t i, uint32_t count, int32_t *z0)
{
    const uint32_t kk = st->kernel;
    const uint32_t hw = (uint32_t)st->syn_h * st->syn_w;
    const uint32_t c = i / hw;
    const uint32_t rem = i - c * hw;
    const uint32_t r = rem / st->syn_w;
    const uint32_t q = rem - r * st->syn_w;
    const uint32_t rr = r / kk;
    const uint32_t qq = q / kk;
    if (rr >= st->out_h || qq >= st->out_w) { /* rows, columns the kernel never covers */
        return 0;
    }
    patch_add(st, (c * kk + (r - rr * kk)) * kk + (q - qq * kk), count, z0 + rr * st->out_w + qq);
    return st->out_c;
}
#endif

uint32_t sg_scatter(const sg_stage *st, uint32_t i, int32_t count, int32_t *z0)
{
    if (st->kind == SG_KIND_DENSE) {
        return sg_scatter_dense(st, i, (uint32_t)count, z0);
    }
#if !defined(SG_NO_PATCH)
    if ((st->flags & SG_FLAG_PATCH) != 0u) {
        return scatter_patch(st, i, (uint32_t)count, z0);
    }
#endif
    return scatter_conv(st, i, (uint32_t)count, z0);
}

/* Taps along one axis that reach an output: ki with (r + padding - ki) a non-negative
 * multiple of stride and (r + padding - ki) / stride < out. */
static uint32_t axis_taps(uint32_t r, const sg_stage *st, uint32_t out)
{
    uint32_t ki;
    uint32_t n = 0;
    for (ki = 0; ki < st->kernel; ++ki) {
        const int32_t d = (int32_t)r + (int32_t)st->padding - (int32_t)ki;
        if (d >= 0 && (uint32_t)d % st->stride == 0u && (uint32_t)d / st->stride < out) {
            ++n;
        }
    }
    return n;
}

uint32_t sg_fanout(const sg_stage *st, uint32_t i)
{
    uint32_t hw;
    uint32_t rem;
    if (st->kind == SG_KIND_DENSE) {
        return st->out_c;
    }
    hw = (uint32_t)st->syn_h * st->syn_w;
    rem = i % hw;
    return st->out_c * axis_taps(rem / st->syn_w, st, st->out_h) *
           axis_taps(rem % st->syn_w, st, st->out_w);
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
                for (; zj != stop; ++zj, ++x) {
                    *x = x_of((int64_t)v0 * zj[0] + (int64_t)v1 * zj[n_out] +
                                  (int64_t)v2 * zj[2u * n_out] + (int64_t)v3 * zj[3u * n_out],
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
