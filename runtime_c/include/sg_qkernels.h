/* SPDX-License-Identifier: MIT */
/**
 * @file sg_qkernels.h
 * @brief int8 layers of imported TFLite models, bit-exact with TFLite (Micro)'s reference
 *        kernels: conv2d (per-channel), depthwise conv2d, fully connected, average pool.
 *
 * C99, no heap, no floating point: every buffer belongs to the caller, and the
 * requantisation parameters (multiplier, shift, offsets, clamp range) are precomputed
 * on the host exactly as TFLite does it (converters/tflite_graph.py). Layout is NHWC for
 * activations, OHWI for conv filters, 1HW(C*M) for depthwise filters, [out][in] for
 * fully connected weights; bias is int32 (may be NULL).
 *
 * Output = clamp(MBQM(acc + bias, multiplier[c], shift[c]) + output_offset, act_min, act_max)
 * where acc = sum (input + input_offset) * (filter + filter_offset) over the window, points
 * outside the image skipped (zero padding), and MBQM is TFLite's double-rounding
 * MultiplyByQuantizedMultiplier (sg_q_mbqm). The int32 accumulator must not overflow:
 * the converter checks sum|w| * 255 + |bias| < 2^31 per channel.
 */
#ifndef SG_QKERNELS_H
#define SG_QKERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "sg_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Shape of an NHWC tensor (filters: n = output channels; fully connected: see below). */
typedef struct sg_qdims {
    int32_t n, h, w, c; /**< each >= 1 */
} sg_qdims;

/**
 * Requantisation of the int32 accumulator of one output channel: multiplier in
 * [0, 2^31) (Q31), shift in [-31, 30] (positive: left). @c count is 1 (per-tensor, used
 * for every channel) or the number of output channels (per-channel).
 */
typedef struct sg_qrequant {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t count;
} sg_qrequant;

/** Window geometry and offsets of a convolution (conv2d and depthwise). */
typedef struct sg_qconv_params {
    int32_t stride_h, stride_w;     /**< >= 1 */
    int32_t dilation_h, dilation_w; /**< >= 1 */
    int32_t pad_h, pad_w;           /**< >= 0: rows/cols of zero padding before the image */
    int32_t depth_multiplier;       /**< depthwise only (>= 1): output channels per input channel */
    int32_t input_offset;           /**< -input zero point, in [-127, 128] */
    int32_t output_offset;          /**< output zero point, in [-128, 127] */
    int32_t act_min, act_max;       /**< clamp range, -128 <= act_min <= act_max <= 127 */
} sg_qconv_params;

/** Offsets and clamp range of a fully connected layer. */
typedef struct sg_qfc_params {
    int32_t input_offset;     /**< -input zero point, in [-127, 128] */
    int32_t filter_offset;    /**< -weights zero point (0 for TFLite int8), in [-127, 128] */
    int32_t output_offset;    /**< output zero point, in [-128, 127] */
    int32_t act_min, act_max; /**< clamp range, -128 <= act_min <= act_max <= 127 */
} sg_qfc_params;

/** Average pool geometry and clamp range (input and output share scale and zero point). */
typedef struct sg_qpool_params {
    int32_t stride_h, stride_w; /**< >= 1 */
    int32_t filter_h, filter_w; /**< >= 1 */
    int32_t pad_h, pad_w;       /**< >= 0 */
    int32_t act_min, act_max;   /**< clamp range, -128 <= act_min <= act_max <= 127 */
} sg_qpool_params;

/**
 * TFLite's MultiplyByQuantizedMultiplier (double rounding, TFLite Micro's default):
 * RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x * 2^max(shift, 0), multiplier),
 * max(-shift, 0)). x * 2^left wraps modulo 2^32 as TFLite's int32 product does on every
 * two's-complement target. Requires shift in [-31, 30] (not checked: hot path).
 */
int32_t sg_q_mbqm(int32_t x, int32_t multiplier, int32_t shift);

/**
 * Conv2d, TFLite CONV_2D int8 (reference_integer_ops::ConvPerChannel), grouped when
 * filter_dims.c < input_dims.c (groups = input c / filter c).
 * @param[in]  params        geometry and offsets (depth_multiplier ignored)
 * @param[in]  quant         per-channel (count = filter n) or per-tensor (count 1)
 * @param[in]  input_dims    N, H, W, C_in
 * @param[in]  input         int8 NHWC
 * @param[in]  filter_dims   C_out, KH, KW, C_in / groups
 * @param[in]  filter        int8 OHWI
 * @param[in]  bias          C_out int32, or NULL
 * @param[in]  output_dims   N, OH, OW, C_out (the caller's output size, as TFLite's)
 * @param[out] output        int8 NHWC
 * @return SG_OK, or SG_ERR_ARG (NULL pointer, a dimension < 1, inconsistent shapes,
 *         a parameter out of range).
 */
sg_status sg_q_conv2d(const sg_qconv_params *params, const sg_qrequant *quant,
                      const sg_qdims *input_dims, const int8_t *input, const sg_qdims *filter_dims,
                      const int8_t *filter, const int32_t *bias, const sg_qdims *output_dims,
                      int8_t *output);

/**
 * Depthwise conv2d, TFLite DEPTHWISE_CONV_2D int8
 * (reference_integer_ops::DepthwiseConvPerChannel): output channel ic * M + m reads input
 * channel ic, M = params->depth_multiplier.
 * @param[in]  filter_dims   1, KH, KW, C_in * M
 * @param[in]  output_dims   N, OH, OW, C_in * M
 * Other arguments as sg_q_conv2d (quant count 1 or C_in * M).
 */
sg_status sg_q_depthwise_conv2d(const sg_qconv_params *params, const sg_qrequant *quant,
                                const sg_qdims *input_dims, const int8_t *input,
                                const sg_qdims *filter_dims, const int8_t *filter,
                                const int32_t *bias, const sg_qdims *output_dims, int8_t *output);

/**
 * Fully connected, TFLite FULLY_CONNECTED int8 (reference_integer_ops::FullyConnected and
 * FullyConnectedPerChannel): output[b][o] from input[b][0..n_in) and weights[o][0..n_in).
 * @param[in]  params    offsets and clamp range
 * @param[in]  quant     per-channel (count = n_out) or per-tensor (count 1)
 * @param[in]  batches   >= 1
 * @param[in]  n_in      >= 1 input features per batch row
 * @param[in]  n_out     >= 1 output features
 * @param[in]  input     [batches][n_in] int8
 * @param[in]  weights   [n_out][n_in] int8
 * @param[in]  bias      n_out int32, or NULL
 * @param[out] output    [batches][n_out] int8
 * @return SG_OK, or SG_ERR_ARG.
 */
sg_status sg_q_fully_connected(const sg_qfc_params *params, const sg_qrequant *quant,
                               int32_t batches, int32_t n_in, int32_t n_out, const int8_t *input,
                               const int8_t *weights, const int32_t *bias, int8_t *output);

/**
 * Average pool, TFLite AVERAGE_POOL_2D int8 (reference_integer_ops::AveragePool): the mean
 * of the window's points inside the image (padding not counted), rounded half away from
 * zero, clamped.
 * @param[in]  input_dims   N, H, W, C
 * @param[in]  output_dims  N, OH, OW, C
 * @return SG_OK, or SG_ERR_ARG (also when a window has no point inside the image).
 */
sg_status sg_q_average_pool2d(const sg_qpool_params *params, const sg_qdims *input_dims,
                              const int8_t *input, const sg_qdims *output_dims, int8_t *output);

#ifdef __cplusplus
}
#endif
#endif /* SG_QKERNELS_H */
