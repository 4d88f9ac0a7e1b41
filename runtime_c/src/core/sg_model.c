/* SPDX-License-Identifier: MIT */
/* Queries of a loaded model: labels, arena, input channels, window, layer sizes. The
 * kind-specific answers come from the model's engine. */
#include "sg_engine.h"

/* Loaded: sg_model_load succeeded (it sets data and engine last). */
static int loaded(const sg_model *model)
{
    return model != NULL && model->data != NULL && model->engine != NULL;
}

const char *sg_model_label(const sg_model *model, uint16_t index)
{
    if (model == NULL || model->labels == NULL || index >= model->n_classes) {
        return NULL;
    }
    return model->labels + (size_t)index * SG_LABEL_SIZE;
}

size_t sg_arena_size(const sg_model *model)
{
    return model == NULL ? 0u : (size_t)model->arena_bytes;
}

uint16_t sg_model_count_channels(const sg_model *model)
{
    return loaded(model) ? model->engine->count_channels(model) : 0u;
}

uint16_t sg_model_kind(const sg_model *model)
{
    return loaded(model) ? model->engine->format_version : 0u;
}

uint32_t sg_model_window(const sg_model *model)
{
    return loaded(model) ? model->engine->window(model) : 0u;
}

uint16_t sg_model_n_layers(const sg_model *model)
{
    return loaded(model) ? model->engine->layers(model, UINT16_MAX, NULL) : 0u;
}

sg_status sg_model_layer(const sg_model *model, uint16_t index, sg_layer_info *info)
{
    if (!loaded(model) || info == NULL || index >= sg_model_n_layers(model)) {
        return SG_ERR_ARG;
    }
    (void)model->engine->layers(model, index, info);
    return SG_OK;
}
