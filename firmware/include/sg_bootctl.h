/* SPDX-License-Identifier: MIT */
/*
 * Boot control: the record the application and the bootloader share in the two
 * boot_ctl sectors (docs/PROTOCOL.md 3.5). The application asks for an upgrade after a
 * verified FW_END and confirms itself once it runs; the bootloader performs the copy,
 * the trial boot and the fallback.
 */
#ifndef SG_BOOTCTL_H
#define SG_BOOTCTL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Boot states, in the order an upgrade passes through them. */
typedef enum sg_boot_state {
    SG_BOOT_IDLE = 0,        /**< running a confirmed image, nothing to do */
    SG_BOOT_PENDING = 1,     /**< secondary holds a verified image: upgrade at next boot */
    SG_BOOT_BACKED_UP = 2,   /**< primary copied to backup */
    SG_BOOT_TRIAL = 3,       /**< secondary copied to primary; booted on trial, unconfirmed */
    SG_BOOT_REVERTING = 4    /**< trial not confirmed: copying backup to primary */
} sg_boot_state;

/** What the application reports in INFO. */
typedef struct sg_boot_info {
    uint8_t state;        /**< sg_boot_state */
    uint8_t confirmed;    /**< the running image is confirmed */
    uint32_t fw_version;  /**< the running image's header version */
    uint32_t fw_crc;      /**< the running image's header image_crc */
} sg_boot_info;

/**
 * The boot-selection record (pysg/device/ops.py MODELSEL_RECORD, docs/PROTOCOL.md 3.2): the
 * model slot the user chose with MODEL_SELECT. It applies while that slot still holds the
 * generation it had and no model newer than @c newest exists (a later upload wins).
 */
typedef struct sg_model_sel {
    uint8_t valid;       /**< a record is there (0: the newest model is active) */
    uint8_t slot;        /**< the slot chosen */
    uint32_t generation; /**< its generation when chosen */
    uint32_t newest;     /**< the newest generation of any slot then */
} sg_model_sel;

/** The boot-selection record of the newest boot-control sector (valid = 0 when none). */
void sg_bootctl_model_sel(sg_model_sel *sel);

/**
 * Record @p sel (the boot state is kept) in the other boot-control sector, the selection
 * first and the boot-control record last, so a power cut leaves the previous pair.
 * 0 on success, -1 on a flash error, -2 on a board without boot-control sectors.
 */
int sg_bootctl_select_model(const sg_model_sel *sel);

/** Fill @p info from the boot-control record and the primary image header. */
void sg_bootctl_info(sg_boot_info *info);

/** Record SG_BOOT_PENDING (secondary verified); 0 on success, -1 on a flash error. */
int sg_bootctl_request_upgrade(void);

/** Mark the running image confirmed (SG_BOOT_TRIAL -> SG_BOOT_IDLE); no-op otherwise. */
int sg_bootctl_confirm(void);

/**
 * Check the image header at @p region_addr (magic, sizes, load address, board name,
 * header CRC and image CRC) against @p load_addr; 0 when valid, -1 otherwise.
 */
int sg_image_check(uint32_t region_addr, uint32_t region_size, uint32_t load_addr);

#ifdef __cplusplus
}
#endif
#endif /* SG_BOOTCTL_H */
