/* SPDX-License-Identifier: MIT */
/* Generated from pysg/device/ops.py by tools/gen_proto_header.py: do not edit. */
#ifndef SG_PROTO_OPS_H
#define SG_PROTO_OPS_H

#define SG_PROTO_VERSION 1u
#define SG_PROTO_REPLY_BIT 0x80u
#define SG_PROTO_HEADER_SIZE 4u
#define SG_PROTO_CRC_SIZE 4u
#define SG_PROTO_MAX_PAYLOAD 4096u
#define SG_SLOT_HEADER_SIZE 256u
#define SG_IMAGE_HEADER_SIZE 256u

typedef enum sg_op {
    SG_OP_HELLO = 0x01,
    SG_OP_INFO = 0x02,
    SG_OP_STATS = 0x03,
    SG_OP_RESET = 0x04,
    SG_OP_SET_BAUD = 0x05,
    SG_OP_MODEL_BEGIN = 0x10,
    SG_OP_MODEL_DATA = 0x11,
    SG_OP_MODEL_END = 0x12,
    SG_OP_MODEL_ACTIVATE = 0x13,
    SG_OP_MODEL_READ = 0x14,
    SG_OP_FW_BEGIN = 0x20,
    SG_OP_FW_DATA = 0x21,
    SG_OP_FW_END = 0x22,
    SG_OP_FW_ACTIVATE = 0x23,
    SG_OP_STREAM_START = 0x30,
    SG_OP_STREAM_STEPS = 0x31,
    SG_OP_SCORE_FROM = 0x32,
    SG_OP_PREDICT = 0x33,
} sg_op;

typedef enum sg_dev_status {
    SG_DEV_OK = 0,
    SG_DEV_ERR_FRAME = -1,
    SG_DEV_ERR_OP = -2,
    SG_DEV_ERR_ARG = -3,
    SG_DEV_ERR_STATE = -4,
    SG_DEV_ERR_OFFSET = -5,
    SG_DEV_ERR_FLASH = -6,
    SG_DEV_ERR_VERIFY = -7,
    SG_DEV_ERR_MODEL = -8,
    SG_DEV_ERR_NO_MODEL = -9,
    SG_DEV_ERR_TOO_BIG = -10,
    SG_DEV_ERR_RUNTIME = -11,
    SG_DEV_ERR_UNSUPPORTED = -12,
    SG_DEV_ERR_IMAGE = -13,
} sg_dev_status;

#define SG_CAP_MODEL 0x01u
#define SG_CAP_STREAM 0x02u
#define SG_CAP_FIRMWARE 0x04u
#define SG_CAP_BAUD 0x08u
#define SG_STREAM_LOGITS 0x01u

#endif /* SG_PROTO_OPS_H */
