/* SPDX-License-Identifier: MIT */
/* What every Cortex-M board shares: the system part of the vector table and the reset. */
#ifndef SG_CORTEXM_H
#define SG_CORTEXM_H

#include <stdint.h>

typedef void (*sg_vector)(void);

/*
 * The 16 system vectors: initial stack pointer, reset, then NMI, HardFault, MemManage,
 * BusFault, UsageFault, 4 reserved, SVC, DebugMon, reserved, PendSV, SysTick.
 */
#define SG_CORTEXM_SYSTEM_VECTORS(stack_top, reset, fault, systick)                                        \
    (sg_vector)(uintptr_t)(stack_top), (reset), (fault), (fault), (fault), (fault), (fault), 0, 0, 0, 0,  \
        (fault), (fault), 0, (fault), (systick)

/**
 * Microseconds since boot from a 1 ms SysTick whose interrupt counts @p ms; @p ticks_per_ms
 * is the SysTick reload + 1 (a multiple of 1000).
 */
static inline uint32_t sg_cortexm_micros(const volatile uint32_t *ms, uint32_t ticks_per_ms)
{
    uint32_t m, val;
    do { /* no tick in between, so m and the counter agree */
        m = *ms;
        val = *(volatile uint32_t *)0xE000E018u; /* SysTick CVR, counting down */
    } while (m != *ms);
    return m * 1000u + (ticks_per_ms - 1u - val) / (ticks_per_ms / 1000u);
}

/** System reset through the SCB (the bootloader runs next); does not return. */
__attribute__((noreturn)) static inline void sg_cortexm_system_reset(void)
{
    __asm__ volatile("dsb");
    *(volatile uint32_t *)0xE000ED0Cu = 0x05FA0004u; /* SCB AIRCR: VECTKEY | SYSRESETREQ */
    __asm__ volatile("dsb");
    for (;;) {
    }
}

#endif /* SG_CORTEXM_H */
