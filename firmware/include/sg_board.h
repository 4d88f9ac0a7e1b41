/* SPDX-License-Identifier: MIT */
/*
 * The board interface: everything the pysg firmware needs from a board (UART, time,
 * flash, reset, identity). One implementation per folder under firmware/boards/;
 * docs/PORTING.md explains how to write one. The application and the bootloader call
 * nothing else that is board-specific.
 */
#ifndef SG_BOARD_H
#define SG_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A flash region: board address and size in bytes (whole erase sectors). */
typedef struct sg_flash_region {
    uint32_t addr;
    uint32_t size;
} sg_flash_region;

/**
 * Where things live in the board's flash. Every region starts and ends on an erase
 * sector boundary and no two overlap. Regions a board does not have (no bootloader on
 * the POSIX device) have size 0.
 */
typedef struct sg_flash_layout {
    sg_flash_region boot;          /**< the bootloader */
    sg_flash_region boot_ctl[2];   /**< boot-control records, two sectors used in turn */
    sg_flash_region app_primary;   /**< the application runs here */
    sg_flash_region app_secondary; /**< a new application image is received here */
    sg_flash_region app_backup;    /**< the previous application, kept for fallback */
    sg_flash_region model[2];      /**< model slots A and B */
} sg_flash_layout;

/** Bring up clocks, the UART (at SG_BOARD_BAUD where the board has a rate) and ticks. */
void sg_board_init(void);

/** A short, stable board name ("qemu-mps2-an386", "stm32f407-disco", "posix"). */
const char *sg_board_name(void);

/** Eight bytes that identify this unit (e.g. a hash of the MCU's unique ID). */
void sg_board_device_id(uint8_t id[8]);

/** Up to @p max received bytes into @p buf without waiting; returns how many (0: none). */
size_t sg_board_uart_read(uint8_t *buf, size_t max);

/** Send @p n bytes; returns when they are queued or sent. */
void sg_board_uart_write(const uint8_t *data, size_t n);

/** Wait until everything written has left the UART (before a reset or a baud change). */
void sg_board_uart_flush(void);

/** Change the UART rate; 0 on success, -1 when the rate (or any change) is unsupported. */
int sg_board_uart_set_baud(uint32_t baud);

/** Sleep until something may have happened (an interrupt, or a few ms on POSIX). */
void sg_board_idle(void);

/** Milliseconds since boot (wraps). */
uint32_t sg_board_millis(void);

/** Microseconds since boot (wraps), or always 0 when the board has no such timer. */
uint32_t sg_board_micros(void);

/** The flash layout (static, never NULL). */
const sg_flash_layout *sg_board_flash_layout(void);

/** Erase [addr, addr + size): whole sectors inside one region. 0 on success, -1 on error. */
int sg_board_flash_erase(uint32_t addr, uint32_t size);

/** Program @p n bytes at @p addr (previously erased). 0 on success, -1 on error. */
int sg_board_flash_program(uint32_t addr, const void *data, size_t n);

/** Flash is memory-mapped: a pointer to the byte at board address @p addr. */
const uint8_t *sg_board_flash_ptr(uint32_t addr);

/**
 * Reset the device; does not return. On a microcontroller a system reset (the
 * bootloader runs next); on POSIX the application restarts with RAM state lost and
 * the flash file kept.
 */
void sg_board_reset(void)
#if defined(__GNUC__)
    __attribute__((noreturn))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif /* SG_BOARD_H */
