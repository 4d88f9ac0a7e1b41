/* SPDX-License-Identifier: MIT */
/**
 * @file sg_qnet.h
 * @brief Private: the imported int8 network kind (version 2 .sgm, docs/FORMAT.md §7-10):
 *        loader (sg_qnet_load.c), delta execution and the event-count encoder
 *        (sg_qnet_step.c), the open step's counts (sg_qnet_input.c) and engine
 *        (sg_qnet_engine.c). The TFLite-exact dense kernels
 *        it requantises with are public: include/sg_qkernels.h (sg_qkernels.c).
 */
#ifndef SG_QNET_H
#define SG_QNET_H

#include "../../core/sg_engine.h"

/* ---------------------------------------------------------------- the engine's operations */

sg_status sg_qnet_check_header(sg_loader *L);
sg_status sg_qnet_load(sg_loader *L, uint64_t *arena_bytes, uint64_t *n_out);
size_t sg_qnet_layout(sg_runtime *rt);
void sg_qnet_reset(sg_runtime *rt);
void sg_qnet_open_step(sg_runtime *rt);
size_t sg_qnet_feed(sg_runtime *rt, const sg_event *events, size_t e, size_t n, int64_t t_lo,
                    size_t *accepted, size_t *dropped);
void sg_qnet_add_counts(sg_runtime *rt, const uint16_t *counts);
void sg_qnet_close_step(sg_runtime *rt);
void sg_qnet_step_tensor(sg_runtime *rt, const int8_t *x);

#endif /* SG_QNET_H */
