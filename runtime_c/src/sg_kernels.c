/* SPDX-License-Identifier: MIT */
/*
 * Portable reference kernels (docs/FORMAT.md §3): bucket decay, pooling index map,
 * dense and conv scatter, the x of a neuron. Always built; an optimised variant for an
 * ISA would replace a whole function under #if.
 */
#include "sg_internal.h"

void sg_decay_stage(const sg_stage *st, uint16_t k, int32_t *z)
{
    const uint32_t n = st->n_out;
    uint32_t b;
    uint32_t j;
    for (b = (uint32_t)k - 1u; b >= 1u; --b) {
        const uint16_t a = st->alpha[b];
        int32_t *zk = z + (size_t)b * n;
        const int32_t *zp = z + (size_t)(b - 1u) * n;
        for (j = 0; j < n; ++j) {
            if ((zk[j] | zp[j]) != 0) { /* D(0, a, 0) = 0: skip idle taps */
                zk[j] = sg_decay(zk[j], a, zp[j]);
            }
        }
    }
    {
        const uint16_t a0 = st->alpha[0];
        for (j = 0; j < n; ++j) {
            if (z[j] != 0) {
                z[j] = sg_decay(z[j], a0, 0);
            }
        }
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
    /* Most scatters carry a single event or spike: no multiply, eight adds per turn
     * (the weight column is strided, so the compiler cannot vectorise it). Adds wrap
     * (uint32) as FORMAT.md specifies; the result is the same as the general loop. */
    if (count == 1u) {
        for (; j + 8u <= n; j += 8u, z0 += 8, w += 8u * n_in) {
            const int8_t *w4 = w + 4u * n_in;
            z0[0] = (int32_t)((uint32_t)z0[0] + (uint32_t)(int32_t)w[0]);
            z0[1] = (int32_t)((uint32_t)z0[1] + (uint32_t)(int32_t)w[n_in]);
            z0[2] = (int32_t)((uint32_t)z0[2] + (uint32_t)(int32_t)w[2u * n_in]);
            z0[3] = (int32_t)((uint32_t)z0[3] + (uint32_t)(int32_t)w[3u * n_in]);
            z0[4] = (int32_t)((uint32_t)z0[4] + (uint32_t)(int32_t)w4[0]);
            z0[5] = (int32_t)((uint32_t)z0[5] + (uint32_t)(int32_t)w4[n_in]);
            z0[6] = (int32_t)((uint32_t)z0[6] + (uint32_t)(int32_t)w4[2u * n_in]);
            z0[7] = (int32_t)((uint32_t)z0[7] + (uint32_t)(int32_t)w4[3u * n_in]);
        }
        z0 -= j;
        for (; j < n; ++j, w += n_in) {
            z0[j] = (int32_t)((uint32_t)z0[j] + (uint32_t)(int32_t)w[0]);
        }
        return n;
    }
    for (; j < n; ++j, w += n_in) {
        z0[j] = (int32_t)((uint32_t)z0[j] + count * (uint32_t)(int32_t)w[0]);
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

uint32_t sg_scatter(const sg_stage *st, uint32_t i, int32_t count, int32_t *z0)
{
    if (st->kind == 1u) {
        return sg_scatter_dense(st, i, (uint32_t)count, z0);
    }
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
    if (st->kind == 1u) {
        return st->out_c;
    }
    hw = (uint32_t)st->syn_h * st->syn_w;
    rem = i % hw;
    return st->out_c * axis_taps(rem / st->syn_w, st, st->out_h) *
           axis_taps(rem % st->syn_w, st, st->out_w);
}

int32_t sg_neuron_x(const sg_stage *st, uint16_t k, const int32_t *z, uint32_t j)
{
    const uint32_t ch = j / ((uint32_t)st->out_h * st->out_w);
    const int16_t *vq = st->vweights + (size_t)ch * k;
    const unsigned n = st->vshift[ch];
    int64_t acc = 0;
    uint32_t b;
    for (b = 0; b < k; ++b) {
        acc += (int64_t)vq[b] * z[(size_t)b * st->n_out + j];
    }
    if (n > 0u) {
        acc = sg_asr64(acc + ((int64_t)1 << (n - 1u)), n);
    }
    return sg_sat32((int64_t)st->bias[ch] + acc);
}
