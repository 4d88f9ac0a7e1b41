/* SPDX-License-Identifier: MIT */
/*
 * Model A/B slots and image uploads in flash (docs/PROTOCOL.md 3.2, 3.5).
 *
 * A model slot is a flash region: a SG_SLOT_HEADER_SIZE-byte slot header, then the .sgm
 * file, used in place. The header is written last, in one program call, and carries its
 * own CRC, so a slot is either empty/invalid or holds a complete, verified model
 * (the layout is pysg/device/ops.py's SLOT_HEADER):
 *
 *   offset  field
 *   0       u32 magic SG_SLOT_MAGIC ("SGSL")
 *   4       u16 header size (256), u16 header version (1)
 *   8       u32 generation (activation counter; the valid slot with the newest wins, mod 2^32)
 *   12      u32 size of the model file, 16 u32 CRC-32 of the model file
 *   20..251 0
 *   252     u32 CRC-32 of bytes [0, 252)
 *
 * An upload (model or firmware image) is the BEGIN/DATA/END state machine over one
 * region, kept in RAM so an interrupted upload resumes until the next reset.
 */
#ifndef SG_SLOTS_H
#define SG_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#include "sg_bootctl.h"
#include "sg_proto_ops.h"
#include "sg_runtime.h"

/* SG_SLOT_MAGIC, SG_SLOT_VERSION, SG_SLOT_OFF_<FIELD>: generated from pysg/device/ops.py */
#define SG_SLOT_COUNT 2

/** What a slot's header says, after checking it and the model it describes. */
typedef struct sg_slot_info {
    uint8_t valid;       /**< header, model CRC and sg_model_load all good */
    uint32_t generation;
    uint32_t size;
    uint32_t crc;
} sg_slot_info;

/** Upload states. */
enum { SG_UPLOAD_IDLE = 0, SG_UPLOAD_RECEIVING = 1, SG_UPLOAD_VERIFIED = 2 };

/** One upload under way (RAM only). */
typedef struct sg_upload {
    uint8_t state;       /**< SG_UPLOAD_* */
    uint8_t target;      /**< model slot index (unused for firmware) */
    uint32_t region_addr;/**< the region erased at BEGIN */
    uint32_t data_addr;  /**< where byte 0 of the upload goes */
    uint32_t size, crc;  /**< announced at BEGIN */
    uint32_t received;   /**< bytes programmed and read back so far */
} sg_upload;

/** Flash address and bytes of model data a slot holds (region minus its header); 0 if absent. */
uint32_t sg_slot_data_addr(unsigned slot);
uint32_t sg_slot_capacity(unsigned slot);

/**
 * Check slot @p slot: header magic/version/CRC, size within the slot, model CRC-32, and
 * sg_model_load (into @p scratch). Fills @p info; info->valid says whether it passed.
 */
void sg_slot_read(unsigned slot, sg_model *scratch, sg_slot_info *info);

/**
 * The valid slot with the newest generation (ahead modulo 2^32, so the counter may wrap;
 * slot 0 on a tie), or -1 (@p info: SG_SLOT_COUNT entries).
 */
int sg_slots_active(const sg_slot_info *info);

/**
 * The active slot: the one the boot-selection record @p sel chose (sg_bootctl.h) while it
 * still holds the generation it had and no slot is newer than the record's @c newest (a
 * later upload wins); otherwise sg_slots_active(). -1 when no slot is valid.
 */
int sg_slots_pick(const sg_slot_info *info, const sg_model_sel *sel);

/**
 * The generation a newly activated model gets: one ahead of every generation the slots
 * and the boot-selection record know (mod 2^32), so it is the newest and the record no
 * longer applies; 1 when there is none.
 */
uint32_t sg_slots_next_generation(const sg_slot_info *info, const sg_model_sel *sel);

/** Write the slot header (one program call) and read it back; an sg_dev_status. */
int sg_slot_commit(unsigned slot, uint32_t generation, uint32_t size, uint32_t crc);

/**
 * BEGIN: resume the upload of the same size and crc into the same region (when the bytes
 * still to come are erased: a failed chunk may have spoilt some), or erase the region and
 * start at 0. @p capacity is the most bytes the region takes for data.
 * Returns an sg_dev_status; *resume is the offset to continue from.
 */
int sg_upload_begin(sg_upload *u, uint32_t region_addr, uint32_t region_size, uint32_t data_addr,
                    uint32_t capacity, uint8_t target, uint32_t size, uint32_t crc, uint32_t *resume);

/** DATA: program @p n bytes at @p offset and read them back; ERR_OFFSET sets *expected. */
int sg_upload_data(sg_upload *u, uint32_t offset, const uint8_t *data, size_t n, uint32_t *expected);

/** END: all bytes there and their CRC-32 equal BEGIN's (ERR_VERIFY forgets the upload). */
int sg_upload_verify(sg_upload *u);

#endif /* SG_SLOTS_H */
