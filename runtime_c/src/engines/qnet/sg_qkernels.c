/* SPDX-License-Identifier: MIT */
/* int8 TFLite-exact reference kernels (sg_qkernels.h). Integer arithmetic only; every
 * signed operation whose C result would be implementation-defined or undefined (shift of
 * a negative value, int32 wrap-around) is written out so the code means the same on
 * every C99 target. */
#include "sg_qkernels.h"

/* Geometry bound: with h, w, strides, dilations, pads and kernel sizes <= 2^15 - 1 every
 * window coordinate (out * stride - pad + k * dilation) stays well inside int32. */
#define SG_QGEOM_MAX 32767

/* uint32 -> int32 modulo 2^32, without the implementation-defined conversion. */
static int32_t sg_wrap32(uint32_t u)
{
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* Arithmetic shift right (floor division by 2^e), 0 <= e <= 31. */
static int32_t sg_asr32(int32_t x, int e)
{
    return x < 0 ? ~(~x >> e) : x >> e;
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), ties away from zero
 * via the nudge, saturating the one overflow case (INT32_MIN * INT32_MIN). */
static int32_t sg_srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    /* C99 division truncates toward zero, like the reference */
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero. */
static int32_t sg_rdbpot(int32_t x, int e)
{
    const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    const int32_t remainder = sg_wrap32((uint32_t)x & (uint32_t)mask);
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return sg_asr32(x, e) + (remainder > threshold ? 1 : 0);
}

int32_t sg_q_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? (int)shift : 0;
    const int right = shift > 0 ? 0 : (int)-shift;
    return sg_rdbpot(sg_srdhm(sg_wrap32((uint32_t)x << left), multiplier), right);
}

static int sg_dims_ok(const sg_qdims *d)
{
    return d != NULL && d->n >= 1 && d->h >= 1 && d->w >= 1 && d->c >= 1;
}

static int sg_geom_ok(const sg_qdims *d)
{
    return d->h <= SG_QGEOM_MAX && d->w <= SG_QGEOM_MAX;
}

static int sg_range_ok(int32_t v, int32_t lo, int32_t hi)
{
    return v >= lo && v <= hi;
}

static int sg_act_ok(int32_t act_min, int32_t act_max)
{
    return act_min >= -128 && act_min <= act_max && act_max <= 127;
}

/* count is 1 or n_channels; every multiplier in [0, 2^31), every shift in [-31, 30] */
static int sg_requant_ok(const sg_qrequant *q, int32_t n_channels)
{
    int32_t i;
    if (q == NULL || q->multiplier == NULL || q->shift == NULL) {
        return 0;
    }
    if (q->count != 1 && q->count != n_channels) {
        return 0;
    }
    for (i = 0; i < q->count; ++i) {
        if (q->multiplier[i] < 0 || !sg_range_ok(q->shift[i], -31, 30)) {
            return 0;
        }
    }
    return 1;
}

static int sg_conv_params_ok(const sg_qconv_params *p)
{
    return p != NULL && sg_range_ok(p->stride_h, 1, SG_QGEOM_MAX) &&
           sg_range_ok(p->stride_w, 1, SG_QGEOM_MAX) &&
           sg_range_ok(p->dilation_h, 1, SG_QGEOM_MAX) &&
           sg_range_ok(p->dilation_w, 1, SG_QGEOM_MAX) && sg_range_ok(p->pad_h, 0, SG_QGEOM_MAX) &&
           sg_range_ok(p->pad_w, 0, SG_QGEOM_MAX) && sg_range_ok(p->input_offset, -127, 128) &&
           sg_range_ok(p->output_offset, -128, 127) && sg_act_ok(p->act_min, p->act_max);
}

/* requantise one accumulator of output channel c and clamp it */
static int8_t sg_requant_one(int32_t acc, const sg_qrequant *q, int32_t c, int32_t output_offset,
                             int32_t act_min, int32_t act_max)
{
    const int32_t i = q->count == 1 ? 0 : c;
    int32_t v = sg_q_mbqm(acc, q->multiplier[i], q->shift[i]) + output_offset;
    if (v < act_min) {
        v = act_min;
    }
    if (v > act_max) {
        v = act_max;
    }
    return (int8_t)v;
}

static size_t sg_nhwc(const sg_qdims *d, int32_t n, int32_t y, int32_t x, int32_t c)
{
    return (((size_t)n * (size_t)d->h + (size_t)y) * (size_t)d->w + (size_t)x) * (size_t)d->c +
           (size_t)c;
}

sg_status sg_q_conv2d(const sg_qconv_params *params, const sg_qrequant *quant,
                      const sg_qdims *input_dims, const int8_t *input, const sg_qdims *filter_dims,
                      const int8_t *filter, const int32_t *bias, const sg_qdims *output_dims,
                      int8_t *output)
{
    int32_t groups, out_per_group, b, oy, ox, oc;
    if (!sg_conv_params_ok(params) || !sg_dims_ok(input_dims) || !sg_dims_ok(filter_dims) ||
        !sg_dims_ok(output_dims) || input == NULL || filter == NULL || output == NULL) {
        return SG_ERR_ARG;
    }
    if (!sg_geom_ok(input_dims) || !sg_geom_ok(filter_dims) || !sg_geom_ok(output_dims) ||
        input_dims->n != output_dims->n || filter_dims->n != output_dims->c ||
        input_dims->c % filter_dims->c != 0) {
        return SG_ERR_ARG;
    }
    groups = input_dims->c / filter_dims->c;
    if (output_dims->c % groups != 0 || !sg_requant_ok(quant, output_dims->c)) {
        return SG_ERR_ARG;
    }
    out_per_group = output_dims->c / groups;
    for (b = 0; b < input_dims->n; ++b) {
        for (oy = 0; oy < output_dims->h; ++oy) {
            const int32_t y0 = oy * params->stride_h - params->pad_h;
            for (ox = 0; ox < output_dims->w; ++ox) {
                const int32_t x0 = ox * params->stride_w - params->pad_w;
                for (oc = 0; oc < output_dims->c; ++oc) {
                    const int32_t ic0 = (oc / out_per_group) * filter_dims->c;
                    int32_t acc = 0;
                    int32_t ky, kx, ic;
                    for (ky = 0; ky < filter_dims->h; ++ky) {
                        const int32_t iy = y0 + ky * params->dilation_h;
                        if (iy < 0 || iy >= input_dims->h) {
                            continue; /* zero padding: the point adds nothing */
                        }
                        for (kx = 0; kx < filter_dims->w; ++kx) {
                            const int32_t ix = x0 + kx * params->dilation_w;
                            const int8_t *in, *w;
                            if (ix < 0 || ix >= input_dims->w) {
                                continue;
                            }
                            in = input + sg_nhwc(input_dims, b, iy, ix, ic0);
                            w = filter + sg_nhwc(filter_dims, oc, ky, kx, 0);
                            for (ic = 0; ic < filter_dims->c; ++ic) {
                                acc += (int32_t)w[ic] * ((int32_t)in[ic] + params->input_offset);
                            }
                        }
                    }
                    if (bias != NULL) {
                        acc += bias[oc];
                    }
                    output[sg_nhwc(output_dims, b, oy, ox, oc)] = sg_requant_one(
                        acc, quant, oc, params->output_offset, params->act_min, params->act_max);
                }
            }
        }
    }
    return SG_OK;
}

sg_status sg_q_depthwise_conv2d(const sg_qconv_params *params, const sg_qrequant *quant,
                                const sg_qdims *input_dims, const int8_t *input,
                                const sg_qdims *filter_dims, const int8_t *filter,
                                const int32_t *bias, const sg_qdims *output_dims, int8_t *output)
{
    int32_t m_count, b, oy, ox, ic, m;
    if (!sg_conv_params_ok(params) || !sg_dims_ok(input_dims) || !sg_dims_ok(filter_dims) ||
        !sg_dims_ok(output_dims) || input == NULL || filter == NULL || output == NULL) {
        return SG_ERR_ARG;
    }
    m_count = params->depth_multiplier;
    if (m_count < 1 || !sg_geom_ok(input_dims) || !sg_geom_ok(filter_dims) ||
        !sg_geom_ok(output_dims) || input_dims->n != output_dims->n || filter_dims->n != 1 ||
        (int64_t)input_dims->c * m_count != (int64_t)output_dims->c ||
        filter_dims->c != output_dims->c || !sg_requant_ok(quant, output_dims->c)) {
        return SG_ERR_ARG;
    }
    for (b = 0; b < input_dims->n; ++b) {
        for (oy = 0; oy < output_dims->h; ++oy) {
            const int32_t y0 = oy * params->stride_h - params->pad_h;
            for (ox = 0; ox < output_dims->w; ++ox) {
                const int32_t x0 = ox * params->stride_w - params->pad_w;
                for (ic = 0; ic < input_dims->c; ++ic) {
                    for (m = 0; m < m_count; ++m) {
                        const int32_t oc = ic * m_count + m;
                        int32_t acc = 0;
                        int32_t ky, kx;
                        for (ky = 0; ky < filter_dims->h; ++ky) {
                            const int32_t iy = y0 + ky * params->dilation_h;
                            if (iy < 0 || iy >= input_dims->h) {
                                continue;
                            }
                            for (kx = 0; kx < filter_dims->w; ++kx) {
                                const int32_t ix = x0 + kx * params->dilation_w;
                                if (ix < 0 || ix >= input_dims->w) {
                                    continue;
                                }
                                acc += (int32_t)filter[sg_nhwc(filter_dims, 0, ky, kx, oc)] *
                                       ((int32_t)input[sg_nhwc(input_dims, b, iy, ix, ic)] +
                                        params->input_offset);
                            }
                        }
                        if (bias != NULL) {
                            acc += bias[oc];
                        }
                        output[sg_nhwc(output_dims, b, oy, ox, oc)] =
                            sg_requant_one(acc, quant, oc, params->output_offset, params->act_min,
                                           params->act_max);
                    }
                }
            }
        }
    }
    return SG_OK;
}

sg_status sg_q_fully_connected(const sg_qfc_params *params, const sg_qrequant *quant,
                               int32_t batches, int32_t n_in, int32_t n_out, const int8_t *input,
                               const int8_t *weights, const int32_t *bias, int8_t *output)
{
    int32_t b, o, i;
    if (params == NULL || input == NULL || weights == NULL || output == NULL || batches < 1 ||
        n_in < 1 || n_out < 1 || !sg_range_ok(params->input_offset, -127, 128) ||
        !sg_range_ok(params->filter_offset, -127, 128) ||
        !sg_range_ok(params->output_offset, -128, 127) ||
        !sg_act_ok(params->act_min, params->act_max) || !sg_requant_ok(quant, n_out)) {
        return SG_ERR_ARG;
    }
    for (b = 0; b < batches; ++b) {
        const int8_t *in = input + (size_t)b * (size_t)n_in;
        for (o = 0; o < n_out; ++o) {
            const int8_t *w = weights + (size_t)o * (size_t)n_in;
            int32_t acc = 0;
            for (i = 0; i < n_in; ++i) {
                acc += ((int32_t)w[i] + params->filter_offset) *
                       ((int32_t)in[i] + params->input_offset);
            }
            if (bias != NULL) {
                acc += bias[o];
            }
            output[(size_t)b * (size_t)n_out + (size_t)o] = sg_requant_one(
                acc, quant, o, params->output_offset, params->act_min, params->act_max);
        }
    }
    return SG_OK;
}

sg_status sg_q_average_pool2d(const sg_qpool_params *params, const sg_qdims *input_dims,
                              const int8_t *input, const sg_qdims *output_dims, int8_t *output)
{
    int32_t b, oy, ox, c;
    if (params == NULL || !sg_dims_ok(input_dims) || !sg_dims_ok(output_dims) || input == NULL ||
        output == NULL || !sg_geom_ok(input_dims) || !sg_geom_ok(output_dims) ||
        input_dims->n != output_dims->n || input_dims->c != output_dims->c ||
        !sg_range_ok(params->stride_h, 1, SG_QGEOM_MAX) ||
        !sg_range_ok(params->stride_w, 1, SG_QGEOM_MAX) ||
        !sg_range_ok(params->filter_h, 1, SG_QGEOM_MAX) ||
        !sg_range_ok(params->filter_w, 1, SG_QGEOM_MAX) ||
        !sg_range_ok(params->pad_h, 0, SG_QGEOM_MAX) ||
        !sg_range_ok(params->pad_w, 0, SG_QGEOM_MAX) ||
        !sg_act_ok(params->act_min, params->act_max)) {
        return SG_ERR_ARG;
    }
    /* every window needs a point inside the image (TFLite fails otherwise): check the
     * rows and the columns before writing anything */
    for (oy = 0; oy < output_dims->h; ++oy) {
        const int32_t y0 = oy * params->stride_h - params->pad_h;
        if (y0 + params->filter_h <= 0 || y0 >= input_dims->h) {
            return SG_ERR_ARG;
        }
    }
    for (ox = 0; ox < output_dims->w; ++ox) {
        const int32_t x0 = ox * params->stride_w - params->pad_w;
        if (x0 + params->filter_w <= 0 || x0 >= input_dims->w) {
            return SG_ERR_ARG;
        }
    }
    for (b = 0; b < input_dims->n; ++b) {
        for (oy = 0; oy < output_dims->h; ++oy) {
            const int32_t y0 = oy * params->stride_h - params->pad_h;
            const int32_t ky0 = y0 < 0 ? -y0 : 0;
            const int32_t ky1 =
                params->filter_h < input_dims->h - y0 ? params->filter_h : input_dims->h - y0;
            for (ox = 0; ox < output_dims->w; ++ox) {
                const int32_t x0 = ox * params->stride_w - params->pad_w;
                const int32_t kx0 = x0 < 0 ? -x0 : 0;
                const int32_t kx1 =
                    params->filter_w < input_dims->w - x0 ? params->filter_w : input_dims->w - x0;
                const int32_t count = (ky1 - ky0) * (kx1 - kx0); /* >= 1, checked above */
                for (c = 0; c < input_dims->c; ++c) {
                    int32_t acc = 0;
                    int32_t ky, kx;
                    for (ky = ky0; ky < ky1; ++ky) {
                        for (kx = kx0; kx < kx1; ++kx) {
                            acc += input[sg_nhwc(input_dims, b, y0 + ky, x0 + kx, c)];
                        }
                    }
                    /* C99 division truncates toward zero, so this rounds half away from zero */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    if (acc < params->act_min) {
                        acc = params->act_min;
                    }
                    if (acc > params->act_max) {
                        acc = params->act_max;
                    }
                    output[sg_nhwc(output_dims, b, oy, ox, c)] = (int8_t)acc;
                }
            }
        }
    }
    return SG_OK;
}
