/* SPDX-License-Identifier: MIT */
/*
 * The SpikingGamma kernels' Cortex-M DSP paths (sg_gamma_kernels.c under
 * __ARM_FEATURE_DSP) against their portable C, in one image: the kernels are compiled
 * twice, once as they are and once with -DSG_NO_DSP and every function renamed sg_ -> pt_
 * (tests/test_gamma_dsp.py does both). The x of neurons (sg_stage_x) on states and
 * constants at the edges of the DSP path's fast-path condition (bucket sums around
 * +-2^31, shifts 0..62, saturating biases) and at random; the bucket decays
 * (sg_decay_stage) on the same states, on small ones around the K = 4 SMLAxB path's
 * +-2^14 bounds, near their neighbours (the progress rule), with Q15 decays at the edges
 * and at random; every output compared bit for bit. Exit status 0 iff all match.
 */
#include <stdio.h>
#include <string.h>

#include "../src/engines/gamma/sg_gamma.h"

void pt_stage_x(const sg_stage *st, uint16_t k, const int32_t *z, uint32_t j0, uint32_t count,
                int32_t *x);
void pt_decay_stage(const sg_stage *st, uint16_t k, int32_t *z);
uint32_t pt_scatter(const sg_stage *st, uint32_t i, int32_t count, int32_t *z0);

#define N 64u /* neurons per stage */
#define KMAX 6u
#define ROUNDS 400u

static uint32_t rng = 0x2545F491u;
static int32_t za[KMAX * N], xa[N], xb[N], bias[N], da[KMAX * N], db[KMAX * N];
static int16_t vq[N * KMAX];
static uint16_t alpha[KMAX];
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
        1073741824, -1073741824, -1073741825, 32767,      -32768,          65536,
        32768,      -32769,      -65536,      65535,      16384,           -16385};
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
    case 4: /* near a neighbour: the decay's progress rule */
        return (next() & 1u) ? near : (int32_t)((uint32_t)near + (next() % 7u) - 3u);
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
        for (i = 0; i < k; ++i) { /* Q15 decays: the edges and at random */
            static const uint16_t edge_a[] = {0, 1, 16384, 32766, 32767};
            alpha[i] = next() % 3u == 0u ? edge_a[next() % 5u] : (uint16_t)(next() % 32768u);
        }
        if (r % 4u == 2u) { /* small states: the K = 4 decay's SMLAxB path, its range edges,
                             * neighbours a few units apart (the progress rule) */
            for (i = 0; i < k * N; ++i) {
                static const int32_t small[] = {16384, -16384, 16385, -16385, 0, 1, -1};
                const uint32_t v = next() % 4u;
                za[i] = v == 0u             ? small[next() % 7u]
                        : v == 1u && i >= N ? za[i - N] + (int32_t)(next() % 7u) - 3
                                            : (int32_t)(next() % 40000u) - 20000;
            }
            for (i = 0; i < N; i += 5u) { /* +-B alternating: differences of 2B, at the bound */
                static const int32_t bound[] = {16383, 16384, 16385, 16400, 16600};
                const int32_t b = bound[next() % 5u] * ((next() & 1u) ? 1 : -1);
                uint32_t j;
                for (j = 0; j < k; ++j) {
                    za[j * N + i] = (j & 1u) ? -b : b;
                }
            }
        }
        st.alpha = alpha;
        memcpy(da, za, sizeof(int32_t) * k * N);
        memcpy(db, za, sizeof(int32_t) * k * N);
        sg_decay_stage(&st, k, da);
        pt_decay_stage(&st, k, db);
        check("decay_stage", da, db, k * N, r);
        pt_stage_x(&st, k, za, 0, N, xb);
        sg_stage_x(&st, k, za, 0, N, xa);
        check("stage_x", xa, xb, N, r);
        sg_stage_x(&st, k, za, 5, N - 9u, xa); /* a run starting mid-channel */
        pt_stage_x(&st, k, za, 5, N - 9u, xb);
        check("stage_x j0 5", xa, xb, N - 9u, r);
    }
    for (r = 0; r < ROUNDS; ++r) { /* patch convs: every input, against the generic kernel */
        static int8_t w[4 * 3 * 5 * 5];
        static const uint16_t kk[] = {1, 2, 3, 4, 5};
        const uint16_t k = kk[r % 5u];
        uint32_t i;
        memset(&st, 0, sizeof st);
        st.kind = SG_KIND_CONV2D;
        st.flags = SG_FLAG_PATCH;
        st.kernel = st.stride = k;
        st.syn_c = (uint16_t)(1u + r % 3u);
        st.syn_h = (uint16_t)(k * (1u + next() % 3u) + next() % k); /* rows no patch covers */
        st.syn_w = (uint16_t)(k * (1u + next() % 3u) + next() % k);
        st.out_c = (uint16_t)(1u + next() % 4u);
        st.out_h = (uint16_t)(st.syn_h / k);
        st.out_w = (uint16_t)(st.syn_w / k);
        st.n_in = (uint32_t)st.syn_c * st.syn_h * st.syn_w;
        st.n_out = (uint32_t)st.out_c * st.out_h * st.out_w;
        st.weights = w;
        for (i = 0; i < sizeof w; ++i) {
            w[i] = (int8_t)(next() % 256u);
        }
        for (i = 0; i < st.n_out; ++i) {
            da[i] = db[i] = pick(0);
        }
        ++checks;
        for (i = 0; i < st.n_in; ++i) {
            const int32_t c = (int32_t)pick(0);
            if (sg_scatter(&st, i, c, da) != pt_scatter(&st, i, c, db)) {
                if (failures++ < 10u) {
                    printf("scatter round %u input %u: fan-out differs\n", r, (unsigned)i);
                }
                break;
            }
        }
        check("patch scatter", da, db, st.n_out, r);
        { /* the inputs of one output position at once (the frame path: SMLABB quads and
           * pairs for counts below 2^15) against the generic kernel, input by input */
            const uint32_t rr = next() % st.out_h;
            const uint32_t qq = next() % st.out_w;
            const uint32_t taps = (uint32_t)st.syn_c * k * k;
            const uint32_t n = 1u + next() % 16u;
            uint32_t held[32];
            uint32_t sum = 0;
            for (i = 0; i < n; ++i) {
                const uint32_t t = next() % taps;
                const uint32_t c = t / (k * k);
                const uint32_t ki = t / k % k;
                const uint32_t kj = t % k;
                held[2u * i] = t;
                /* counts below 2^15 (the SMLABB paths), at its edge, or any uint16 */
                held[2u * i + 1u] = r % 3u == 0u                        ? 1u + next() % 32767u
                                    : r % 3u == 1u && next() % 2u == 0u ? 32767u + next() % 3u
                                                                        : 1u + next() % 65535u;
                sum += held[2u * i + 1u];
                (void)pt_scatter(&st, (c * st.syn_h + rr * k + ki) * st.syn_w + qq * k + kj,
                                 (int32_t)held[2u * i + 1u], db);
            }
            ++checks;
            if (sg_patch_scatter(&st, held, n, da + rr * st.out_w + qq) != sum) {
                if (failures++ < 10u) {
                    printf("patch_scatter round %u: event sum differs\n", r);
                }
            }
            check("patch_scatter", da, db, st.n_out, r);
        }
    }
    printf("test_gamma_dsp: %u checks, %u failures\n", checks, failures);
    return failures != 0u;
}
