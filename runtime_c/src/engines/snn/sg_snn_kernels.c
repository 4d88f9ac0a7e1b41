/* SPDX-License-Identifier: MIT */
/*
 * Version 3 kernels (docs/FORMAT.md §12): the synaptic sum of one entry, event-driven
 * (each nonzero input x'[i] is scattered to the outputs it reaches, so a silent input
 * costs one test), and the neuron update (requantise, current, membrane, spike, reset,
 * logits). The int32 accumulator is exact: the loader checks the bound of §12, so every
 * partial sum, in any order, stays inside int32. The neuron arithmetic is int64 with the
 * reference's rounding (rnd: half up, arithmetic shift) and saturation (sat32).
 */
#include "sg_snn.h"

/* rnd(x, s): (x + 2^(s-1)) >> s, arithmetic; s = 0 leaves x (FORMAT.md §12). */
SG_INLINE int64_t rnd(int64_t x, unsigned s)
{
    return s == 0u ? x : sg_asr64(x + ((int64_t)1 << (s - 1u)), s);
}

/* decay(v, b) = rnd(v b, 30) */
SG_INLINE int64_t decay(int32_t v, int32_t b)
{
    return rnd((int64_t)v * b, SG_SNN_DECAY_SHIFT);
}

/* ---------------------------------------------------------------- synaptic sums */

/* dense: acc[j] += w[j][i] x'[i] for every nonzero x'[i] (w row-major [n_out][n_in]). */
static uint64_t dense(const sg_slayer *ly, const sg_snn_input *in, int32_t *acc)
{
    const uint32_t n_in = ly->n_in;
    const uint32_t n_out = ly->n_out;
    uint64_t nz = 0;
    uint32_t i;
    for (i = 0; i < n_in; ++i) {
        const int32_t x = (int32_t)sg_snn_x(in, i);
        const int8_t *w = ly->weights + i;
        uint32_t j;
        if (x == 0) {
            continue;
        }
        ++nz;
        for (j = 0; j < n_out; ++j, w += n_in) { /* column i of w[n_out][n_in] */
            acc[j] += (int32_t)*w * x;
        }
    }
    return nz * n_out;
}

/* The output rows [*lo, *hi) whose window holds input row @p y at some tap:
 * Y stride - pad <= y <= Y stride - pad + k - 1, 0 <= Y < n_out. */
SG_INLINE void rows_of(uint32_t y, uint32_t pad, uint32_t k, uint32_t stride, uint32_t n_out,
                       uint32_t *lo, uint32_t *hi)
{
    const uint32_t top = y + pad; /* Y stride <= top */
    const uint32_t h = top / stride + 1u;
    *lo = top < k ? 0u : (top - k) / stride + 1u;
    *hi = h < n_out ? h : n_out;
}

/* conv2d and sum pooling: each nonzero input (c, y, x) scattered through the kernel taps
 * that read it (conv: times the weights of the output channels of its group). */
static uint64_t windowed(const sg_slayer *ly, const sg_snn_input *in, int32_t *acc)
{
    const uint32_t in_h = ly->in_h;
    const uint32_t in_w = ly->in_w;
    const uint32_t oh = ly->out_h;
    const uint32_t ow = ly->out_w;
    const uint32_t kh = ly->kernel_h;
    const uint32_t kw = ly->kernel_w;
    const uint32_t ph = ly->pad_h;
    const uint32_t pw = ly->pad_w;
    const uint32_t sh = ly->stride_h;
    const uint32_t sw = ly->stride_w;
    const int conv = ly->kind == SG_SKIND_CONV2D;
    const uint32_t cg = conv ? (uint32_t)ly->in_c / ly->groups : 1u;  /* inputs per group */
    const uint32_t og = conv ? (uint32_t)ly->out_c / ly->groups : 1u; /* outputs per group */
    const size_t plane = (size_t)oh * ow;
    const size_t step =
        (size_t)cg * kh * kw; /* conv: from one output channel's weights to the next */
    uint64_t taps = 0;
    uint32_t i = 0;
    uint32_t c;
    for (c = 0; c < ly->in_c; ++c) {
        const uint32_t g = c / cg;
        const uint32_t ci = c - g * cg;
        /* conv: w[g og][ci][0][0] and the group's first output plane; pool: channel c's */
        const size_t w0 = ((size_t)g * og * cg + ci) * kh * kw;
        int32_t *ac = acc + (conv ? (size_t)g * og : (size_t)c) * plane;
        uint32_t y;
        for (y = 0; y < in_h; ++y) {
            uint32_t y_lo;
            uint32_t y_hi;
            uint32_t x;
            rows_of(y, ph, kh, sh, oh, &y_lo, &y_hi);
            for (x = 0; x < in_w; ++x, ++i) {
                const int32_t v = (int32_t)sg_snn_x(in, i);
                uint32_t x_lo;
                uint32_t x_hi;
                uint32_t Y;
                if (v == 0) {
                    continue;
                }
                rows_of(x, pw, kw, sw, ow, &x_lo, &x_hi);
                if (x_lo >= x_hi || y_lo >= y_hi) {
                    continue;
                }
                taps += (uint64_t)(y_hi - y_lo) * (x_hi - x_lo);
                for (Y = y_lo; Y < y_hi; ++Y) {
                    int32_t *ay = ac + (size_t)Y * ow;
                    uint32_t X;
                    if (!conv) {
                        for (X = x_lo; X < x_hi; ++X) {
                            ay[X] += v;
                        }
                        continue;
                    }
                    {
                        /* w[o][ci][ky][kx], o over the group's outputs */
                        const int8_t *wy = ly->weights + w0 + (size_t)(y + ph - Y * sh) * kw;
                        for (X = x_lo; X < x_hi; ++X) {
                            const int8_t *w = wy + (x + pw - X * sw);
                            int32_t *a = ay + X;
                            uint32_t o;
                            for (o = 0; o < og; ++o) {
                                a[(size_t)o * plane] += (int32_t)w[(size_t)o * step] * v;
                            }
                        }
                    }
                }
            }
        }
    }
    return taps * og;
}

uint64_t sg_snn_accumulate(const sg_slayer *ly, const sg_snn_input *in, const uint8_t *prev,
                           int32_t *acc)
{
    const uint32_t n_out = ly->n_out;
    uint64_t synops = 0;
    uint32_t j;
    if (ly->bias != NULL) {
        const uint32_t plane = (uint32_t)ly->out_h * ly->out_w;
        uint32_t c;
        for (c = 0, j = 0; c < ly->out_c; ++c) {
            const int32_t b = ly->bias[c];
            uint32_t k;
            for (k = 0; k < plane; ++k, ++j) {
                acc[j] = b;
            }
        }
    } else {
        for (j = 0; j < n_out; ++j) {
            acc[j] = 0;
        }
    }
    switch (ly->kind) {
    case SG_SKIND_DENSE:
        synops = dense(ly, in, acc);
        break;
    case SG_SKIND_IDENTITY:
        for (j = 0; j < n_out; ++j) {
            acc[j] += (int32_t)sg_snn_x(in, j);
        }
        break;
    default:
        synops = windowed(ly, in, acc);
        break;
    }
    if (ly->rec_weights != NULL) { /* the entry's own activations of step t - 1 */
        uint64_t nz = 0;
        uint32_t k;
        for (k = 0; k < n_out; ++k) {
            const int32_t a = prev[k];
            const int8_t *r = ly->rec_weights + k;
            if (a == 0) {
                continue;
            }
            ++nz;
            for (j = 0; j < n_out; ++j) { /* wrapping: the bound of a sum pool leaves r out */
                acc[j] =
                    (int32_t)((uint32_t)acc[j] + (uint32_t)((int32_t)r[(size_t)j * n_out] * a));
            }
        }
        synops += nz * n_out;
    }
    return synops;
}

/* ---------------------------------------------------------------- neurons */

uint32_t sg_snn_neurons(const sg_slayer *ly, const int32_t *acc, uint8_t *act, int32_t *v,
                        int32_t *logits)
{
    const uint32_t n_out = ly->n_out;
    const uint32_t plane = (uint32_t)ly->out_h * ly->out_w;
    const uint32_t nk = ly->neuron;
    const int output = (ly->flags & SG_FLAG_OUTPUT) != 0u;
    const int spiking = sg_snn_spiking(nk);
    const int fire_ge = (ly->flags & SG_SFLAG_FIRE_GE) != 0u;
    const int logit_v = (ly->flags & SG_SFLAG_LOGITS_V) != 0u || !spiking;
    int32_t *isyn = nk == SG_NEURON_CUBALIF ? v + n_out : NULL; /* v is NULL for neuron none */
    uint32_t nz = 0;
    uint32_t j;
    for (j = 0; j < n_out; ++j) {
        const uint32_t c = ly->n_rq == 1u ? 0u : j / plane;
        const int32_t cur = sg_sat32(rnd((int64_t)acc[j] * ly->mult[c], ly->shift[c]));
        const int32_t *p;
        int64_t u;
        int32_t vj;
        uint8_t s = 0;
        if (nk == SG_NEURON_NONE) { /* step 5: counts pass on, or the output's logits */
            const uint8_t a = output ? 0u : (uint8_t)(cur < 0 ? 0 : cur > 255 ? 255 : cur);
            act[j] = a;
            nz += a != 0u;
            if (output) {
                logits[j] = cur;
            }
            continue;
        }
        p = ly->neuron_params + (ly->n_rec == 1u ? 0u : (size_t)j * SG_SNN_N_NEURON_PARAMS);
        u = cur;
        if (nk == SG_NEURON_CUBALIF) { /* step 6 */
            isyn[j] = sg_sat32(decay(isyn[j], p[SG_NP_BETA_SYN]) + cur);
            u = sg_sat32(rnd((int64_t)isyn[j] * p[SG_NP_SYN_GAIN], SG_SNN_SYN_GAIN_SHIFT));
        }
        /* step 7 */
        vj = sg_sat32(decay(v[j], p[SG_NP_BETA_MEM]) + u);
        vj = sg_sat32((int64_t)vj + p[SG_NP_V_BIAS]);
        if (ly->reset == SG_RESET_SUBTRACT_NEXT && act[j] != 0u) {
            vj = sg_sat32((int64_t)vj - p[SG_NP_THRESHOLD]);
        }
        if (spiking) { /* step 8 */
            const int32_t thr = p[SG_NP_THRESHOLD];
            s = (uint8_t)(fire_ge ? vj >= thr : vj > thr);
            if (s != 0u) {
                if (ly->reset == SG_RESET_SUBTRACT) {
                    vj = sg_sat32((int64_t)vj - thr);
                } else if (ly->reset == SG_RESET_TO_VALUE) {
                    vj = p[SG_NP_V_RESET];
                }
            }
        }
        v[j] = vj;
        act[j] = s;
        nz += s;
        if (output) { /* step 9 */
            logits[j] = logit_v ? vj : (int32_t)s;
        }
    }
    return nz;
}
