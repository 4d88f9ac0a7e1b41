/* SPDX-License-Identifier: MIT */
/*
 * The firmware update (PROTOCOL.md 3.5): FW_BEGIN/DATA/END receive and verify an image
 * into the secondary region, FW_ACTIVATE hands it to the bootloader. The op table gates
 * every op on SG_CAP_FIRMWARE (a board with a secondary region).
 */
#include "sg_app_priv.h"
#include "sg_board.h"
#include "sg_bootctl.h"
#include "sg_image.h"
#include "sg_proto_ops.h"

size_t sg_app_op_fw_begin(const uint8_t *in, size_t n, uint8_t *out)
{
    const sg_flash_layout *l = sg_board_flash_layout();
    const sg_flash_region *sec = &l->app_secondary;
    /* The image is copied into primary to run: it must fit there too (208 of 256 KB on STM32F4). */
    const uint32_t cap = l->app_primary.size < sec->size ? l->app_primary.size : sec->size;
    uint32_t resume = 0;
    int s;
    (void)n;
    s = sg_upload_begin(&sg_app.fw_up, sec->addr, sec->size, sec->addr, cap, 0,
                        sg_get_u32(in + SG_REQ_FW_BEGIN_SIZE), sg_get_u32(in + SG_REQ_FW_BEGIN_CRC), &resume);
    if (s != SG_DEV_OK) {
        return sg_app_status(out, s);
    }
    out[0] = SG_DEV_OK;
    sg_put_u32(out + SG_REPLY_FW_BEGIN_RESUME_OFFSET, resume);
    return SG_REPLY_FW_BEGIN_LEN;
}

size_t sg_app_op_fw_data(const uint8_t *in, size_t n, uint8_t *out)
{
    return sg_app_upload_data(&sg_app.fw_up, in, n, out);
}

size_t sg_app_op_fw_end(const uint8_t *in, size_t n, uint8_t *out)
{
    const sg_flash_layout *l = sg_board_flash_layout();
    int s;
    (void)in;
    (void)n;
    s = sg_upload_verify(&sg_app.fw_up);
    if (s != SG_DEV_OK) {
        return sg_app_status(out, s);
    }
    if (sg_app.fw_up.size < SG_IMAGE_HEADER_SIZE
        || sg_image_check(l->app_secondary.addr, l->app_secondary.size,
                          l->app_primary.addr + SG_IMAGE_HEADER_SIZE) != 0) {
        sg_app.fw_up.state = SG_UPLOAD_IDLE;
        return sg_app_status(out, SG_DEV_ERR_IMAGE);
    }
    out[0] = SG_DEV_OK;
    sg_put_u32(out + SG_REPLY_FW_END_VERSION,
               sg_get_u32(sg_board_flash_ptr(l->app_secondary.addr) + SG_IMAGE_OFF_VERSION));
    return SG_REPLY_FW_END_LEN;
}

size_t sg_app_op_fw_activate(const uint8_t *in, size_t n, uint8_t *out)
{
    (void)in;
    (void)n;
    if (sg_app.fw_up.state != SG_UPLOAD_VERIFIED) {
        return sg_app_status(out, SG_DEV_ERR_STATE);
    }
    if (sg_bootctl_request_upgrade() != 0) {
        return sg_app_status(out, SG_DEV_ERR_FLASH);
    }
    sg_app.fw_up.state = SG_UPLOAD_IDLE;
    sg_app.after = SG_AFTER_RESET; /* the bootloader takes over */
    return sg_app_status(out, SG_DEV_OK);
}
