/* SPDX-License-Identifier: MIT */
/* DC_KIND_DENSE: a version 2 model's layers run densely per frame (dc_dense.c). */
#ifndef DC_DENSE_H
#define DC_DENSE_H

#include <stdint.h>

#include "dc_job.h"
#include "sg_runtime.h"

/** Weights into TFLite's layouts, shifts as int32 (both job modes): 0 or DC_ERR_*. */
int32_t dc_dense_prepare(const sg_model *m);

/** One DC_KIND_DENSE gesture (u32 n_frames, u32 0, n_frames int8 input tensors, padded to
 *  4 bytes); *rec is advanced past it. Scores sum every frame's logits. */
int32_t dc_gesture_dense(const sg_model *m, const uint8_t **rec, uint32_t run, int32_t *logits,
                         int64_t *scores, dc_gesture_result *out);

#endif /* DC_DENSE_H */
