/* SPDX-License-Identifier: MIT */
/*
 * Vector table and reset handler for QEMU mps2-an386 (Cortex-M4F), shared by the
 * bootloader and the application: copy .data, clear .bss, enable the FPU, then (the
 * bootloader only) the cold-start flash fill, then main().
 */
#include <stdint.h>

#include "sg_cortexm.h"

#include "sg_board_mps2.h"

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern int main(void);
void sg_reset_entry(void);
static const sg_vector sg_vectors[16 + 32];
void sg_mps2_uart0_rx_irq(void);
void sg_mps2_systick_irq(void);

static void sg_fault(void)
{
    for (;;) {
    }
}

/* -O2 would turn these loops into memcpy/memset calls before .data exists */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void sg_reset_entry(void)
{
    uint32_t *src = &__data_load;
    uint32_t *dst = &__data_start;
    while (dst < &__data_end) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end; ++dst) {
        *dst = 0;
    }
    /* our own table, also when started without the bootloader (256-byte aligned) */
    *(volatile uint32_t *)0xE000ED08u = (uint32_t)(uintptr_t)sg_vectors; /* SCB VTOR */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb");
#ifdef SG_BOARD_BOOTLOADER
    sg_mps2_cold_start();
#endif
    (void)main();
    for (;;) {
    }
}

/* 16 system vectors, then the external interrupts: UART0 RX is IRQ 0 on the AN386 */
__attribute__((section(".vectors"), used)) static const sg_vector sg_vectors[16 + 32] = {
    SG_CORTEXM_SYSTEM_VECTORS(&__stack_top, sg_reset_entry, sg_fault, sg_mps2_systick_irq),
    sg_mps2_uart0_rx_irq, /* IRQ 0 */
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault,
    sg_fault};
