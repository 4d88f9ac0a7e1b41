/* SPDX-License-Identifier: MIT */
/*
 * The one vector table and reset path of QEMU mps2-an386 (Cortex-M4F), linked by every
 * program this repository runs on the board (memory map: mps2_an386.ld):
 *
 *   the firmware         the bootloader (-DSG_BOARD_BOOTLOADER, boot.ld) and the
 *                        application (app.ld), with sg_board_mps2.c's interrupt handlers
 *   the runtime's tests  -DSG_MPS2_NEWLIB_CRT0 and --specs=rdimon.specs (semihost.ld):
 *                        newlib's crt0 then passes argv and the exit status by semihosting
 *   bench/device_cost    semihost.ld, no C library start-up: its main() and handlers
 *
 * Reset: enable the FPU, copy .data, clear .bss, point VTOR at this table (the
 * application runs at app_primary + 256), then (bootloader) the cold-start flash fill
 * and main(), whose status goes to sg_mps2_exit(), or newlib's _start. The handlers
 * and sg_mps2_exit() are weak: a program defines those it uses.
 */
#include <stdint.h>

#include "sg_cortexm.h"

#include "sg_board_mps2.h"

extern uint32_t __stack_top, __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__;
void sg_reset_entry(void);
void sg_mps2_fault(void);
void sg_mps2_uart0_rx_irq(void);
void sg_mps2_systick_irq(void);
void sg_mps2_exit(int status);
static const sg_vector sg_vectors[16 + 32];

#ifdef SG_MPS2_NEWLIB_CRT0
extern void _start(void);
extern void _exit(int status);
#else
extern int main(void);
#endif

/* A fault: stop here (a test program reports it: QEMU exits with 134, like a lockup). */
__attribute__((weak)) void sg_mps2_fault(void)
{
#ifdef SG_MPS2_NEWLIB_CRT0
    _exit(134);
#endif
    for (;;) {
    }
}

/* Where main()'s status goes: nowhere on the device (the firmware's main never returns). */
__attribute__((weak)) void sg_mps2_exit(int status)
{
    (void)status;
    for (;;) {
    }
}

/* An interrupt the program did not ask for is a fault. */
void sg_mps2_uart0_rx_irq(void) __attribute__((weak, alias("sg_mps2_fault")));
void sg_mps2_systick_irq(void) __attribute__((weak, alias("sg_mps2_fault")));

/* -O2 would turn these loops into memcpy/memset calls before .data exists */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void sg_reset_entry(void)
{
    uint32_t *src = &__data_load__;
    uint32_t *dst = &__data_start__;
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb");
    while (dst < &__data_end__) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start__; dst < &__bss_end__; ++dst) {
        *dst = 0;
    }
    /* our own table, also when started without the bootloader (256-byte aligned) */
    *(volatile uint32_t *)0xE000ED08u = (uint32_t)(uintptr_t)sg_vectors; /* SCB VTOR */
    __asm__ volatile("dsb\n\tisb");
#if defined(SG_MPS2_NEWLIB_CRT0)
    _start(); /* clears .bss again, runs constructors, main(argc, argv), exit */
#else
#ifdef SG_BOARD_BOOTLOADER
    sg_mps2_cold_start();
#endif
    sg_mps2_exit(main());
#endif
    for (;;) {
    }
}

/* 16 system vectors, then the external interrupts: UART0 RX is IRQ 0 on the AN386 */
__attribute__((section(".vectors"), used)) static const sg_vector sg_vectors[16 + 32] = {
    SG_CORTEXM_SYSTEM_VECTORS(&__stack_top, sg_reset_entry, sg_mps2_fault, sg_mps2_systick_irq),
    sg_mps2_uart0_rx_irq, /* IRQ 0 */
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault,
    sg_mps2_fault};
