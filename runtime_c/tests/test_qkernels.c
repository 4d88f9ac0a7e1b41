/* SPDX-License-Identifier: MIT */
/*
 * C tests of the int8 TFLite kernels (sg_qkernels.h) against TFLite Micro's outputs
 * (golden file from gen_qkernels_golden.py: random one-op layers and the layers of the
 * pymicro-wakeword models). Outputs compared bit-exact; the first differing index is
 * printed. Usage: test_qkernels GOLDEN_FILE. Exit status 0 iff every case matches.
 */
#include <stdio.h>
#include <string.h>

#include "sg_qkernels.h"

#define MAX_BYTES 65536u
#define MAX_CH 1024u

static int8_t input[MAX_BYTES], filter[MAX_BYTES], expected[MAX_BYTES], output[MAX_BYTES];
static int32_t mult[MAX_CH], shift[MAX_CH], bias[MAX_CH];
static FILE *golden;
static int bad_file;

static int32_t rd(void)
{
    unsigned char b[4];
    if (fread(b, 1, 4, golden) != 4) {
        bad_file = 1;
        return 0;
    }
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24);
}

static void rd_n(int32_t *dst, int32_t n, uint32_t cap)
{
    int32_t i;
    if (n < 0 || (uint32_t)n > cap) {
        bad_file = 1;
        return;
    }
    for (i = 0; i < n; ++i) {
        dst[i] = rd();
    }
}

static void rd_blob(int8_t *dst, size_t n)
{
    size_t padded = (n + 3u) & ~(size_t)3u;
    unsigned char pad[4];
    if (n > MAX_BYTES || fread(dst, 1, n, golden) != n ||
        fread(pad, 1, padded - n, golden) != padded - n) {
        bad_file = 1;
    }
}

/* Per-channel (or single) multipliers and shifts, into the shared buffers. */
static void rd_requant(sg_qrequant *q)
{
    q->count = rd();
    rd_n(mult, q->count, MAX_CH);
    rd_n(shift, q->count, MAX_CH);
    q->multiplier = mult;
    q->shift = shift;
}

static size_t vol(const sg_qdims *d)
{
    return (size_t)d->n * (size_t)d->h * (size_t)d->w * (size_t)d->c;
}

static void rd_dims(sg_qdims *d)
{
    d->n = rd();
    d->h = rd();
    d->w = rd();
    d->c = rd();
    if (d->n < 1 || d->h < 1 || d->w < 1 || d->c < 1 || vol(d) > MAX_BYTES) {
        bad_file = 1;
        d->n = d->h = d->w = d->c = 1;
    }
}

/* 0 if output[0..n) == expected[0..n), else 1 (first difference printed) */
static int compare(int index, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        if (output[i] != expected[i]) {
            fprintf(stderr, "case %d: element %lu of %lu: got %d, TFLite Micro %d\n", index,
                    (unsigned long)i, (unsigned long)n, output[i], expected[i]);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int32_t n_cases, k;
    int failures = 0;
    unsigned long elements = 0;
    if (argc != 2 || (golden = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: test_qkernels GOLDEN_FILE\n");
        return 2;
    }
    n_cases = rd();
    for (k = 0; k < n_cases && !bad_file; ++k) {
        const int32_t kind = rd();
        sg_status st;
        size_t n_out;
        if (kind == 1 || kind == 2) {
            sg_qconv_params p;
            sg_qrequant q;
            sg_qdims in_d, f_d, out_d;
            int32_t has_bias;
            p.stride_h = rd();
            p.stride_w = rd();
            p.dilation_h = rd();
            p.dilation_w = rd();
            p.pad_h = rd();
            p.pad_w = rd();
            p.depth_multiplier = rd();
            p.input_offset = rd();
            p.output_offset = rd();
            p.act_min = rd();
            p.act_max = rd();
            rd_requant(&q);
            rd_dims(&in_d);
            rd_dims(&f_d);
            has_bias = rd();
            if (has_bias) {
                rd_n(bias, f_d.n == 1 && kind == 2 ? f_d.c : f_d.n, MAX_CH);
            }
            rd_dims(&out_d);
            rd_blob(input, vol(&in_d));
            rd_blob(filter, vol(&f_d));
            n_out = vol(&out_d);
            rd_blob(expected, n_out);
            if (bad_file) {
                break;
            }
            st = (kind == 1 ? sg_q_conv2d : sg_q_depthwise_conv2d)(
                &p, &q, &in_d, input, &f_d, filter, has_bias ? bias : NULL, &out_d, output);
        } else if (kind == 3) {
            sg_qfc_params p;
            sg_qrequant q;
            int32_t batches, n_in, n_o, has_bias;
            p.input_offset = rd();
            p.filter_offset = rd();
            p.output_offset = rd();
            p.act_min = rd();
            p.act_max = rd();
            rd_requant(&q);
            batches = rd();
            n_in = rd();
            n_o = rd();
            has_bias = rd();
            if (has_bias) {
                rd_n(bias, n_o, MAX_CH);
            }
            if (batches < 1 || n_in < 1 || n_o < 1) {
                bad_file = 1;
                break;
            }
            rd_blob(input, (size_t)batches * (size_t)n_in);
            rd_blob(filter, (size_t)n_o * (size_t)n_in);
            n_out = (size_t)batches * (size_t)n_o;
            rd_blob(expected, n_out);
            if (bad_file) {
                break;
            }
            st = sg_q_fully_connected(&p, &q, batches, n_in, n_o, input, filter,
                                      has_bias ? bias : NULL, output);
        } else if (kind == 4) {
            sg_qpool_params p;
            sg_qdims in_d, out_d;
            p.stride_h = rd();
            p.stride_w = rd();
            p.filter_h = rd();
            p.filter_w = rd();
            p.pad_h = rd();
            p.pad_w = rd();
            p.act_min = rd();
            p.act_max = rd();
            rd_dims(&in_d);
            rd_dims(&out_d);
            rd_blob(input, vol(&in_d));
            n_out = vol(&out_d);
            rd_blob(expected, n_out);
            if (bad_file) {
                break;
            }
            st = sg_q_average_pool2d(&p, &in_d, input, &out_d, output);
        } else {
            bad_file = 1;
            break;
        }
        if (st != SG_OK) {
            fprintf(stderr, "case %d (kind %d): status %d\n", (int)k, (int)kind, (int)st);
            ++failures;
            continue;
        }
        failures += compare((int)k, n_out);
        elements += (unsigned long)n_out;
    }
    fclose(golden);
    if (bad_file) {
        fprintf(stderr, "golden file truncated or malformed at case %d\n", (int)k);
        return 2;
    }
    printf("test_qkernels: %d cases, %lu output elements, %d failing\n", (int)n_cases, elements,
           failures);
    return failures == 0 ? 0 : 1;
}
