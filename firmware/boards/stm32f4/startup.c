/* SPDX-License-Identifier: MIT */
/*
 * Vector table and reset handler for the STM32F407 (Cortex-M4F), shared by the
 * bootloader and the application: copy .data, clear .bss, enable the FPU, main().
 */
#include <stdint.h>

#include "sg_cortexm.h"

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern int main(void);
void sg_reset_entry(void);
void sg_stm32_usart2_irq(void);
void sg_stm32_systick_irq(void);

static void sg_fault(void)
{
    for (;;) {
    }
}


#define SG_STM32_VECTORS (16 + 82)

static const sg_vector sg_vectors[SG_STM32_VECTORS];

/*
 * VTOR needs the table aligned to its size rounded up to a power of two (512 bytes
 * here); the application's table is at app_primary + 256, so a copy in RAM is used.
 */
static sg_vector sg_ram_vectors[SG_STM32_VECTORS] __attribute__((aligned(512)));

/* -O2 would turn these loops into memcpy/memset calls before .data exists */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void sg_reset_entry(void)
{
    uint32_t *src = &__data_load;
    uint32_t *dst = &__data_start;
    int i;
    while (dst < &__data_end) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end; ++dst) {
        *dst = 0;
    }
    for (i = 0; i < SG_STM32_VECTORS; ++i) {
        sg_ram_vectors[i] = sg_vectors[i];
    }
    *(volatile uint32_t *)0xE000ED08u = (uint32_t)(uintptr_t)sg_ram_vectors; /* SCB VTOR */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n\tisb");
    (void)main();
    for (;;) {
    }
}

#define F4 sg_fault, sg_fault, sg_fault, sg_fault
#define F8 F4, F4

/* 16 system vectors, then the F407's 82 interrupts: USART2 is IRQ 38, the rest fault */
__attribute__((section(".vectors"), used)) static const sg_vector sg_vectors[SG_STM32_VECTORS] = {
    SG_CORTEXM_SYSTEM_VECTORS(&__stack_top, sg_reset_entry, sg_fault, sg_stm32_systick_irq),
    F8,
    F8,
    F8,
    F8,
    F4,
    sg_fault,
    sg_fault,            /* IRQ 0..37 */
    sg_stm32_usart2_irq, /* IRQ 38 */
    F8,
    F8,
    F8,
    F8,
    F8,
    sg_fault,
    sg_fault,
    sg_fault /* IRQ 39..81 */
};
