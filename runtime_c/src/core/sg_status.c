/* SPDX-License-Identifier: MIT */
/* Status names. */
#include "sg_runtime.h"

const char *sg_status_str(sg_status status)
{
    switch (status) {
    case SG_OK:
        return "SG_OK: success";
    case SG_ERR_ARG:
        return "SG_ERR_ARG: NULL pointer or invalid argument";
    case SG_ERR_TRUNCATED:
        return "SG_ERR_TRUNCATED: buffer shorter than the header or than file_size";
    case SG_ERR_MAGIC:
        return "SG_ERR_MAGIC: not an .sgm model file";
    case SG_ERR_VERSION:
        return "SG_ERR_VERSION: format version or header size not supported";
    case SG_ERR_CRC:
        return "SG_ERR_CRC: header or payload CRC-32 mismatch (corrupted file)";
    case SG_ERR_HEADER:
        return "SG_ERR_HEADER: a header field is out of range";
    case SG_ERR_LABEL:
        return "SG_ERR_LABEL: a class label is empty, unterminated or not UTF-8";
    case SG_ERR_LAYER:
        return "SG_ERR_LAYER: a layer-table field is out of range or inconsistent";
    case SG_ERR_BLOB:
        return "SG_ERR_BLOB: a blob has the wrong size, alignment or bounds, or overlaps";
    case SG_ERR_VALUE:
        return "SG_ERR_VALUE: a blob holds an out-of-range value";
    case SG_ERR_ARENA:
        return "SG_ERR_ARENA: arena_bytes inconsistent, or the arena is too small";
    case SG_ERR_UNSUPPORTED:
        return "SG_ERR_UNSUPPORTED: valid file beyond this build's limits";
    case SG_ERR_TIME:
        return "SG_ERR_TIME: time before the current step, or no time origin";
    default:
        return "SG_ERR_?: unknown status";
    }
}
