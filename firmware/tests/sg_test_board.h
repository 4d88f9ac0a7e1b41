/* SPDX-License-Identifier: MIT */
/*
 * A board for the C unit tests and the fuzzer: flash in RAM (with a bootloader, boot
 * control, three application regions and two model slots, like a real board), the UART
 * replaced by a capture buffer, and a reset that jumps back to the caller.
 */
#ifndef SG_TEST_BOARD_H
#define SG_TEST_BOARD_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#define SG_TEST_FLASH_SIZE (512u * 1024u)
#define SG_TEST_SECTOR_SIZE 4096u
#define SG_TEST_SLOT_SIZE (128u * 1024u)

/** Erase the whole RAM flash (0xFF) and forget captured output. */
void sg_test_board_wipe(void);

/** Everything the application wrote to the UART since the last sg_test_uart_take(). */
const uint8_t *sg_test_uart_output(size_t *n);
void sg_test_uart_take(void);

/** The RAM flash, writable (tests corrupt it on purpose). */
uint8_t *sg_test_flash(void);

/** Make the next @p n flash programs fail (-1). */
void sg_test_fail_programs(unsigned n);

/** Make the next @p n flash programs report success but leave bit 0 of their first byte
 *  cleared (a weak cell: only an erase brings it back). */
void sg_test_corrupt_programs(unsigned n);

/** The UART rate the application set last (115200 after a wipe). */
uint32_t sg_test_uart_baud(void);

/** Set by a test before calling the app: sg_board_reset() longjmps here. */
extern jmp_buf sg_test_reset_point;
extern int sg_test_reset_armed;
extern unsigned sg_test_resets; /* how many resets happened */

#endif /* SG_TEST_BOARD_H */
