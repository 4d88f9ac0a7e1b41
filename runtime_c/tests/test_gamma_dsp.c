/* SPDX-License-Identifier: MIT */
/*
 * The SpikingGamma kernels' Cortex-M DSP paths (sg_gamma_kernels.c under
 * __ARM_FEATURE_DSP) against their portable C, in one image: the kernels are compiled
 * twice, once as they are and once with -DSG_NO_DSP and every function renamed sg_ -> pt_
 * (tests/test_gamma_dsp.py does both). The x of neurons (sg_stage_x) on states and
 * constants at the edges of the DSP path's fast-path condition (bucket sums around
 * +-2^31, shifts 0..62, saturating biases) and at random; every output compared bit for
 * bit. Exit status 0 iff all match.
 */
#include <stdio.h>
#include <string.h>

#include "../src/engines/gamma/sg_gamma.h"

void pt_stage_x(const sg_stage *st, uint16_t k, const int32_t *z, uint32_t j0, uint32_t count,
                int32_t *x);

#define N 64u /* neurons per stage */
#define KMAX 6u
#define ROUNDS 400u

static uint32_t rng = 0x2545F491u;
static int32_t za[KMAX * N], xa[N], xb[N], bias[N];
static int16_t vq[N * KMAX];
static uint8_t vshift[N];
static unsigned checks, failures;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* A state: random, an extreme, near a neighbour +- 2^30, or small. */
static int32_t pick(int32_t near)
{
    static const int32_t edge[] = {
        0,          1,           -1,          2147483647, -2147483647 - 1, 1073741823,
        1073741824, -1073741824, -1073741825, 32767,      -32768,          65536};
    switch (next() % 6u) {
    case 0:
        return (int32_t)next();
    case 1:
        return edge[next() % (sizeof edge / sizeof edge[0])];
    case 2: /* z - t within a few units of +-2^30 */
        return (int32_t)((uint32_t)near + ((next() & 1u) ? 1073741824u : 3221225472u) +
                         (next() % 5u) - 2u);
    case 3:
        return (int32_t)(next() % 2001u) - 1000;
    case 4:
        return near;
    default:
        return (int32_t)(next() >> (next() % 32u)) * ((next() & 1u) ? 1 : -1);
    }
}

static void check(const char *what, const int32_t *a, const int32_t *b, uint32_t n, unsigned round)
{
    uint32_t i;
    ++checks;
    for (i = 0; i < n; ++i) {
        if (a[i] != b[i]) {
            if (failures++ < 10u) {
                printf("%s round %u index %u: dsp %ld != portable %ld\n", what, round, (unsigned)i,
                       (long)a[i], (long)b[i]);
            }
            return;
        }
    }
}

int main(void)
{
    static const uint16_t ks[] = {4, 4, 3, 5, 1, 6};
    sg_stage st;
    unsigned r;
    memset(&st, 0, sizeof st);
    st.n_out = N;
    st.vweights = vq;
    st.vshift = vshift;
    st.bias = bias;
    for (r = 0; r < ROUNDS; ++r) {
        const uint16_t k = ks[r % (sizeof ks / sizeof ks[0])];
        uint32_t i;
        /* dense (one neuron per channel) or conv (4 x 4 neurons per channel) */
        st.out_c = (uint16_t)((r & 1u) ? N : N / 16u);
        st.out_h = st.out_w = (uint16_t)((r & 1u) ? 1u : 4u);
        for (i = 0; i < k * N; ++i) {
            za[i] = pick(i >= N ? za[i - N] : 0);
        }
        for (i = 0; i < N * k; ++i) {
            const uint32_t v = next() % 4u;
            vq[i] = (int16_t)(v == 0u   ? 32767
                              : v == 1u ? -32768
                                        : (int32_t)(next() % 65536u) - 32768);
            if (next() % 3u == 0u) {
                vq[i] = (int16_t)((int32_t)(next() % 9u) - 4);
            }
        }
        for (i = 0; i < N; ++i) {
            vshift[i] = (uint8_t)(next() % 4u == 0u ? next() % 63u : next() % 24u);
            bias[i] = pick(0);
        }
        if (r % 8u == 7u) { /* dense: sums of exactly one bucket, +-2^31 edges, every shift */
            static const int32_t sums[] = {
                2147483647, -2147483647 - 1, 2147483646, -2147483647, 1, -1, 0};
            for (i = 0; i < N; ++i) {
                uint32_t b;
                for (b = 0; b < k; ++b) {
                    vq[i * k + b] = (int16_t)(b == 0u);
                }
                za[i] = sums[i % (sizeof sums / sizeof sums[0])];
                vshift[i] = (uint8_t)(i % 3u == 0u ? 1u : i % 63u);
            }
        }
        pt_stage_x(&st, k, za, 0, N, xb);
        sg_stage_x(&st, k, za, 0, N, xa);
        check("stage_x", xa, xb, N, r);
        sg_stage_x(&st, k, za, 5, N - 9u, xa); /* a run starting mid-channel */
        pt_stage_x(&st, k, za, 5, N - 9u, xb);
        check("stage_x j0 5", xa, xb, N - 9u, r);
    }
    printf("test_gamma_dsp: %u checks, %u failures\n", checks, failures);
    return failures != 0u;
}
