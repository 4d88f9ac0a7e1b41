/* SPDX-License-Identifier: MIT */
/**
 * @file sg_snn.h
 * @brief Private: the layered spiking network kind (version 3 .sgm, NIR's, docs/FORMAT.md
 *        §11-15): loader (sg_snn_load.c: blobs, contents, bound, arena; sg_snn_fields.c: an
 *        entry's fields), the step's layer loop and input (sg_snn_step.c),
 *        the synaptic and neuron kernels (sg_snn_kernels.c) and the engine
 *        (sg_snn_engine.c). The arithmetic is pysg/engines/snn.py's (SnnRef), bit for bit.
 */
#ifndef SG_SNN_H
#define SG_SNN_H

#include "../../core/sg_engine.h"

SG_STATIC_ASSERT(version_snn, SG_FORMAT_VERSION_SNN == SG_FMT_VERSION_SNN);
SG_STATIC_ASSERT(snn_blobs_fit, SG_L3_N_BLOBS <= SG_LOAD_MAX_BLOBS);

/* ---------------------------------------------------------------- the engine's operations */

sg_status sg_snn_check_header(sg_loader *L);
sg_status sg_snn_load(sg_loader *L, uint64_t *arena_bytes, uint64_t *n_out);
size_t sg_snn_layout(sg_runtime *rt);
void sg_snn_open_step(sg_runtime *rt);
size_t sg_snn_feed(sg_runtime *rt, const sg_event *events, size_t e, size_t n, int64_t t_lo,
                   size_t *accepted, size_t *dropped);
void sg_snn_add_counts(sg_runtime *rt, const uint16_t *counts);
void sg_snn_close_step(sg_runtime *rt);

/** Entry @p s's fields up to `reserved` (sg_snn_fields.c, FORMAT.md §15 in pysg's order), with
 *  @p prev the previous entry's output (or the model's input): 0 if valid, else 1 + the
 *  offset of the first bad field inside the entry. */
uint32_t sg_snn_check_fields(const sg_slayer *s, const uint16_t prev[3], int is_last);

/** LIF, CubaLIF, IF and Threshold neurons spike (FORMAT.md §11.1). */
SG_INLINE int sg_snn_spiking(uint32_t nk)
{
    return nk == SG_NEURON_LIF || nk == SG_NEURON_CUBALIF || nk == SG_NEURON_IF ||
           nk == SG_NEURON_THRESHOLD;
}

/* ---------------------------------------------------------------- kernels (sg_snn_kernels.c) */

/** An entry's input activations x' of step t (FORMAT.md §12 step 3): the plain input, or
 *  each element read from the delay ring d_i steps back. */
typedef struct sg_snn_input {
    const uint8_t *x;      /**< [n_in] this step's input (without delays) */
    const uint8_t *ring;   /**< [(D+1)][n_in] with delays, else NULL */
    const uint8_t *delays; /**< [n_in] with delays */
    uint32_t slot;         /**< t mod (D+1) */
    uint32_t slots;        /**< D + 1 */
    uint32_t n_in;         /**< elements per ring slot */
} sg_snn_input;

/** Input element @p i of @p in (x'[i]). */
SG_INLINE uint32_t sg_snn_x(const sg_snn_input *in, uint32_t i)
{
    if (in->ring == NULL) {
        return in->x[i];
    }
    {
        const uint32_t d = in->delays[i];
        const uint32_t s = in->slot >= d ? in->slot - d : in->slot + in->slots - d;
        return in->ring[(size_t)s * in->n_in + i];
    }
}

/** acc = bias + the entry's synaptic sum over x' (+ the recurrent sum over @p prev);
 *  returns the step's synaptic operations (FORMAT.md §12 "Statistics"). */
uint64_t sg_snn_accumulate(const sg_slayer *ly, const sg_snn_input *in, const uint8_t *prev,
                           int32_t *acc);

/** Steps 4-9 for every neuron of the entry: writes its activations over @p act (the previous
 *  step's, read for reset 3) and, for the output entry, its logits into @p logits; returns
 *  the nonzero activations. */
uint32_t sg_snn_neurons(const sg_slayer *ly, const int32_t *acc, uint8_t *act, int32_t *v,
                        int32_t *logits);

#endif /* SG_SNN_H */
