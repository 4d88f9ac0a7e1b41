/* SPDX-License-Identifier: MIT */
/*
 * SpikingGamma reference kernels (docs/FORMAT.md §3), the synaptic side: pooling index
 * map, dense, conv and patch-conv scatter, fan-out (the neuron side, decays and x, is
 * sg_gamma_neuron.c). Always built; an optimised variant for an ISA would replace a whole
 * function under #if (SG_GAMMA_DSP, sg_gamma.h).
 */
#include "sg_gamma.h"

/* A scatter's MLA per weight already is one instruction (SMLAD would pair two strided
 * int8 weights at the cost of a PKHBT); the Cortex-M path here pairs two inputs of a
 * patch conv with SMLABB. */

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

#if defined(SG_GAMMA_DSP)
/* Four taps of one output position, int16 counts: per state four chained SMLABBs, one
 * instruction per input, wrapping as the C does. */
SG_INLINE void patch_add4(const int8_t *w, size_t ws, int32_t *zt, size_t zs, uint32_t o,
                          const uint32_t *h)
{
    const uint32_t t1 = h[0];
    const uint32_t t2 = h[2];
    const uint32_t t3 = h[4];
    const uint32_t t4 = h[6];
    const int32_t c1 = (int32_t)h[1];
    const int32_t c2 = (int32_t)h[3];
    const int32_t c3 = (int32_t)h[5];
    const int32_t c4 = (int32_t)h[7];
    for (; o != 0u; --o, w += ws, zt += zs) {
        *zt =
            __smlabb(c4, w[t4], __smlabb(c3, w[t3], __smlabb(c2, w[t2], __smlabb(c1, w[t1], *zt))));
    }
}
#endif

uint32_t sg_patch_scatter(const sg_stage *st, const uint32_t *held, uint32_t n, int32_t *zt)
{
    const size_t ws = (size_t)st->syn_c * st->kernel * st->kernel;
    const size_t zs = (size_t)st->out_h * st->out_w;
    const uint32_t *end = held + 2u * n;
    uint32_t sum = 0;
#if defined(SG_GAMMA_DSP)
    for (; end - held >= 8 && (held[1] | held[3] | held[5] | held[7]) < 32768u; held += 8) {
        patch_add4(st->weights, ws, zt, zs, st->out_c, held);
        sum += held[1] + held[3] + held[5] + held[7];
    }
#endif
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
