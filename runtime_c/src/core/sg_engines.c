/* SPDX-License-Identifier: MIT */
/*
 * The model kinds this build runs, keyed by the .sgm format_version each one reads.
 * Adding a kind: its folder src/engines/<kind>/ defines `const sg_engine sg_engine_<kind>`,
 * and one name joins SG_ENGINES below.
 */
#include "sg_engine.h"

/* One entry per kind: engines/gamma (version 1), engines/qnet (version 2), engines/snn (3). */
#define SG_ENGINES(X) X(sg_engine_gamma) X(sg_engine_qnet) X(sg_engine_snn)

#define SG_ENGINE_DECLARE(name) extern const sg_engine name;
#define SG_ENGINE_ENTRY(name) &name,
SG_ENGINES(SG_ENGINE_DECLARE)
static const sg_engine *const engines[] = {SG_ENGINES(SG_ENGINE_ENTRY)};

const sg_engine *sg_engine_find(uint32_t format_version)
{
    size_t i;
    for (i = 0; i < sizeof engines / sizeof engines[0]; ++i) {
        if (engines[i]->format_version == format_version) {
            return engines[i];
        }
    }
    return NULL;
}
