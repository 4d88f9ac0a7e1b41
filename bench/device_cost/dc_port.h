/* SPDX-License-Identifier: MIT */
/**
 * @file dc_port.h
 * @brief The board side of the device-cost driver on QEMU mps2-an386 (Cortex-M4F):
 *        semihosting (file output, exit status), the SysTick tick counter used by the
 *        `-icount shift=0` cross-check, and the stack high-water mark.
 */
#ifndef DC_PORT_H
#define DC_PORT_H

#include <stddef.h>
#include <stdint.h>

/** Open @p path on the host for writing (binary, truncating); handle or -1. */
int32_t dc_host_open_write(const char *path);

/** Write @p n bytes to a host handle; 0 on success. */
int32_t dc_host_write(int32_t handle, const void *data, uint32_t n);

/** Close a host handle. */
void dc_host_close(int32_t handle);

/** End the program; QEMU exits with @p status (SYS_EXIT_EXTENDED). */
void dc_host_exit(int32_t status) __attribute__((noreturn));

/** Start SysTick on the core clock, free-running with a wrap counter. */
void dc_ticks_start(void);

/** Core-clock ticks since dc_ticks_start (0 if it was never started). */
uint64_t dc_ticks(void);

/** Bytes of the stack ever used (the painted region that was overwritten). */
uint32_t dc_stack_used(void);

/** Bytes reserved for the stack (the linker script's DC_STACK_BYTES). */
uint32_t dc_stack_size(void);

/** The program: called by the reset handler after .data/.bss set-up. */
int dc_main(void);

#endif /* DC_PORT_H */
